import Foundation
import GRDB

/// The store's database pool behind a gate that `close` shuts: every access holds the gate shared,
/// and `close` waits for the accesses in progress, then fails later ones with `closed`.
///
/// GRDB's own `close` does not make a concurrent read safe: a read that took the reader pool just
/// before the close ran its statements on a closed connection and crashed the process (seen when a
/// server stopped while a job's event stream was reading).
final class GatedPool: @unchecked Sendable {
    private let pool: DatabasePool
    private let gate = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
    /// Read and written only with the gate held (shared to read, exclusive to write).
    private var closed = false

    init(_ pool: DatabasePool) {
        self.pool = pool
        pthread_rwlock_init(gate, nil)
    }

    deinit {
        pthread_rwlock_destroy(gate)
        gate.deallocate()
    }

    /// Runs `body` on the pool unless it is closed; a close waits for it.
    private func entered<T>(_ body: (DatabasePool) throws -> T) throws -> T {
        pthread_rwlock_rdlock(gate)
        defer { pthread_rwlock_unlock(gate) }
        guard !closed else { throw StoreError(.closed, "the store is closed") }
        return try body(pool)
    }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        try entered { try $0.read(body) }
    }

    func unsafeRead<T>(_ body: (Database) throws -> T) throws -> T {
        try entered { try $0.unsafeRead(body) }
    }

    func write<T>(_ body: (Database) throws -> T) throws -> T {
        try entered { try $0.write(body) }
    }

    func writeWithoutTransaction<T>(_ body: (Database) throws -> T) throws -> T {
        try entered { try $0.writeWithoutTransaction(body) }
    }

    func vacuum() throws {
        try entered { try $0.vacuum() }
    }

    /// Waits for the accesses in progress, then closes the pool; later accesses throw `closed`.
    func close() throws {
        pthread_rwlock_wrlock(gate)
        defer { pthread_rwlock_unlock(gate) }
        guard !closed else { return }
        closed = true
        try pool.close()
    }
}
