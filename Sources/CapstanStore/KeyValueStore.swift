import Foundation
import Synchronization

/// The storage contract: a revisioned key-value store modeled on etcd v3.
///
/// Every committed transaction that writes bumps the global revision by one. Engines: SQLite (embedded)
/// and, later, etcd; one conformance suite runs against each.
public protocol KeyValueStore: Sendable {
    /// Reads a key range at the latest revision or an older one.
    /// - Throws: `StoreError.compacted` or `.futureRevision` for a revision that is not available.
    func range(_ request: RangeRequest) async throws -> RangeResult

    /// Runs an atomic compare-and-swap transaction.
    func txn(_ request: TxnRequest) async throws -> TxnResult

    /// Places a transaction in the store's commit order and returns without waiting for its
    /// commit: of two transactions submitted one after the other, the first is applied first.
    /// Engines with no such order (several writers, a network between) run it to completion.
    func submit(_ request: TxnRequest) async -> SubmittedTxn

    /// Streams changes to `range`, in revision order with no gap and no duplicate.
    ///
    /// - Parameter revision: the first revision to deliver; nil starts after the current one.
    ///   A revision below the compaction point fails the stream with `StoreError.compacted`.
    func watch(_ range: KeyRange, fromRevision revision: Int64?) -> WatchStream

    /// Grants a lease of `ttl` seconds.
    func grantLease(ttl: Int64) async throws -> Lease
    /// Resets a lease's time to live; answers the TTL in seconds.
    /// - Throws: `StoreError.leaseNotFound` when the lease expired or was revoked.
    func keepAlive(_ lease: LeaseID) async throws -> Int64
    /// Revokes a lease and deletes the keys attached to it.
    func revokeLease(_ lease: LeaseID) async throws

    /// Discards history before `revision`: reads and watches below it answer `compacted`.
    func compact(upTo revision: Int64) async throws

    /// The current and compacted revisions, and the number of live watches.
    func status() async throws -> StoreStatus

    /// Runs the engine's background work (lease expiry) until cancelled.
    func run() async throws
}

public struct Lease: Sendable, Hashable {
    public var id: LeaseID
    /// Granted time to live in seconds.
    public var ttl: Int64

    public init(id: LeaseID, ttl: Int64) {
        self.id = id
        self.ttl = ttl
    }
}

public struct StoreStatus: Sendable, Hashable {
    public var revision: Int64
    public var compactRevision: Int64
    /// Watches this process is currently feeding live events.
    public var watchers: Int

    public init(revision: Int64, compactRevision: Int64, watchers: Int = 0) {
        self.revision = revision
        self.compactRevision = compactRevision
        self.watchers = watchers
    }
}

extension KeyValueStore {
    /// Reads one key at the latest revision.
    public func get(_ key: String) async throws -> KeyValue? {
        try await range(RangeRequest(.key(key))).kvs.first
    }

    /// Writes one key; answers it as written.
    @discardableResult
    public func put(_ key: String, _ value: Data, lease: LeaseID? = nil) async throws -> KeyValue {
        let result = try await txn(TxnRequest(success: [.put(key: key, value: value, lease: lease)]))
        guard case .put(let kv) = result.results.first else {
            throw StoreError(.io, "engine answered a put without its result")
        }
        return kv
    }

    /// Deletes a key or range; answers how many keys went and the revision after.
    @discardableResult
    public func delete(_ range: KeyRange) async throws -> (deleted: Int, revision: Int64) {
        let result = try await txn(TxnRequest(success: [.delete(range)]))
        guard case .delete(let deleted) = result.results.first else {
            throw StoreError(.io, "engine answered a delete without its result")
        }
        return (deleted, result.revision)
    }
}

extension KeyValueStore {
    /// Runs the transaction to completion: the order of submissions is the order of commits.
    public func submit(_ request: TxnRequest) async -> SubmittedTxn {
        let submitted = SubmittedTxn()
        do {
            submitted.complete(.success(try await txn(request)))
        } catch {
            submitted.complete(.failure(error))
        }
        return submitted
    }
}

/// A transaction placed in a store's commit order, and its result once it has one.
public final class SubmittedTxn: Sendable {
    private struct State {
        var result: Result<TxnResult, any Error>?
        var waiters: [CheckedContinuation<TxnResult, any Error>] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// The result, if the transaction has one already.
    public var finished: Result<TxnResult, any Error>? {
        state.withLock { $0.result }
    }

    /// Waits for the transaction's commit (or failure).
    public func result() async throws -> TxnResult {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Result<TxnResult, any Error>? in
                if let result = state.result { return result }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    /// Records the result and wakes those waiting; later calls are ignored.
    public func complete(_ result: Result<TxnResult, any Error>) {
        let waiters = state.withLock { state -> [CheckedContinuation<TxnResult, any Error>] in
            guard state.result == nil else { return [] }
            state.result = result
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(with: result) }
    }
}
