import Foundation
import Logging

/// A lock held through a store lease, for work that must run in one process at a time across
/// server replicas (compaction, retention sweeps, schedules).
///
/// The holder owns `key`, attached to its lease, and keeps the lease alive. When the holder
/// stops, it revokes the lease and the next contender, which waits on a watch of the key, takes
/// over at once; when the holder dies, the lease expires after `ttl` and the key goes with it.
/// A holder that cannot renew its lease stops its work before the lease can have expired.
public struct LeaseLock: Sendable {
    public let store: any KeyValueStore
    public let key: String
    /// Written as the key's value, so an operator can see who holds the lock.
    public let holder: String
    /// Lease time to live in seconds: how long a dead holder blocks the others.
    public let ttl: Int64
    let logger: Logger

    public init(
        store: any KeyValueStore, key: String, holder: String, ttl: Int64 = 10,
        logger: Logger = Logger(label: "capstan.lock")
    ) {
        precondition(ttl >= 1, "a lock lease lives at least a second")
        self.store = store
        self.key = key
        self.holder = holder
        self.ttl = ttl
        self.logger = logger
    }

    /// A holder name unique to this process: host, process id and a random part.
    public static func processHolder() -> String {
        "\(ProcessInfo.processInfo.hostName)/\(ProcessInfo.processInfo.processIdentifier)/\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Campaigns for the lock and runs `work` while holding it.
    ///
    /// When the lock is lost, `work` is cancelled and the campaign starts again. Returns when
    /// `work` returns (releasing the lock) or when the calling task is cancelled; rethrows what
    /// `work` throws.
    public func whileHolding(_ work: @escaping @Sendable () async throws -> Void) async throws {
        while !Task.isCancelled {
            let lease: Lease
            do {
                lease = try await store.grantLease(ttl: ttl)
            } catch {
                try await pauseAfter(error, "granting the lock's lease")
                continue
            }
            do {
                try await acquire(lease.id)
                logger.info("lock taken", metadata: ["lock.key": "\(key)", "lock.holder": "\(holder)"])
                let finished = try await hold(lease.id, work)
                await release(lease.id)
                if finished { return }
                logger.warning("lock lost; campaigning again", metadata: ["lock.key": "\(key)"])
            } catch {
                await release(lease.id)
                if Task.isCancelled || error is CancellationError { return }
                if let failed = error as? WorkFailed { throw failed.underlying }
                try await pauseAfter(error, "campaigning")
            }
        }
    }

    /// Waits until the key is ours.
    private func acquire(_ lease: LeaseID) async throws {
        while true {
            let attempt = try await store.txn(
                TxnRequest(
                    compares: [Compare(key: key, .createRevision(0))],
                    success: [.put(key: key, value: Data(holder.utf8), lease: lease)],
                    failure: [.range(RangeRequest(.key(key)))]))
            if attempt.succeeded { return }
            try await waitForRelease(after: attempt.revision)
        }
    }

    /// Returns when the key is deleted after `revision`, or after one lease's time to live
    /// (a safety net; the watch is what normally answers).
    private func waitForRelease(after revision: Int64) async throws {
        let store = self.store
        let key = self.key
        let ttl = self.ttl
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await batch in store.watch(.key(key), fromRevision: revision + 1)
                where batch.contains(where: { $0.kind == .delete }) {
                    return
                }
            }
            group.addTask { try await Task.sleep(for: .seconds(ttl)) }
            do {
                _ = try await group.next()
            } catch let error as StoreError where error.code == .compacted {
                // The watch start fell behind compaction: just try again.
            }
            group.cancelAll()
        }
    }

    /// Runs `work` while renewing the lease. Answers true when the work finished, false when the
    /// lock was lost.
    private func hold(_ lease: LeaseID, _ work: @escaping @Sendable () async throws -> Void) async throws -> Bool {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                do {
                    try await work()
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    throw WorkFailed(underlying: error)
                }
                return true
            }
            group.addTask {
                try await self.renew(lease)
                return false
            }
            defer { group.cancelAll() }
            return try await group.next() ?? false
        }
    }

    /// Renews the lease a few times per time to live; returns when it is lost, or when renewals
    /// failed for long enough that it may be about to expire.
    private func renew(_ lease: LeaseID) async throws {
        let interval = Duration.milliseconds(ttl * 1000 / 3)
        var lastRenewed = ContinuousClock.now
        while true {
            try await Task.sleep(for: interval)
            do {
                _ = try await store.keepAlive(lease)
                lastRenewed = .now
            } catch let error as StoreError where error.code == .leaseNotFound {
                return
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                logger.warning("lock lease renewal failed", metadata: ["lock.key": "\(key)", "error": "\(error)"])
                // Two intervals without renewal leave a third of the TTL as margin.
                if ContinuousClock.now - lastRenewed >= interval * 2 { return }
            }
        }
    }

    /// Revokes the lease (deleting the key) so the next holder need not wait for expiry.
    private func release(_ lease: LeaseID) async {
        // Runs even when the caller was cancelled.
        let store = self.store
        let released = Task { try await store.revokeLease(lease) }
        do {
            try await released.value
        } catch let error as StoreError where error.code == .leaseNotFound {
            // Already gone.
        } catch {
            logger.warning("releasing the lock failed; it frees when its lease expires", metadata: ["lock.key": "\(key)", "error": "\(error)"])
        }
    }

    private func pauseAfter(_ error: any Error, _ what: String) async throws {
        logger.warning("lock: \(what) failed; retrying", metadata: ["lock.key": "\(key)", "error": "\(error)"])
        try await Task.sleep(for: .seconds(1))
    }

    private struct WorkFailed: Error {
        let underlying: any Error
    }
}
