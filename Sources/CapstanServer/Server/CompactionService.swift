import CapstanStore
import Logging
import ServiceLifecycle

/// Compacts the store now and then, keeping the newest `keep` revisions.
///
/// Only the replica holding the compaction lock compacts. Config history does not depend on
/// this: it is kept as records of its own, by its own policy.
struct CompactionService: Service {
    let store: any KeyValueStore
    let keep: Int64
    let interval: Duration
    let lockTTL: Int64
    let logger: Logger

    func run() async throws {
        let lock = LeaseLock(
            store: store, key: StoreLayout.lock("compaction"), holder: LeaseLock.processHolder(), ttl: lockTTL,
            logger: logger)
        do {
            try await cancelWhenGracefulShutdown {
                // The first round comes one interval after start, and so does the campaign: a
                // fresh store's first revisions are the user's own.
                try await Task.sleep(for: interval)
                try await lock.whileHolding {
                    while true {
                        do {
                            try await compactOnce()
                        } catch let error as StoreError where error.code != .compacted {
                            logger.warning("compaction failed; trying again later", metadata: ["error": "\(error)"])
                        }
                        try await Task.sleep(for: interval)
                    }
                }
            }
        } catch is CancellationError {
            // Shutting down.
        }
    }

    func compactOnce() async throws {
        let status = try await store.status()
        let target = status.revision - keep
        guard target > status.compactRevision else { return }
        do {
            try await store.compact(upTo: target)
            logger.info("store compacted", metadata: ["store.compact_revision": "\(target)"])
        } catch let error as StoreError where error.code == .compacted {
            // Another compaction got there first.
        }
    }
}

/// Runs a store engine's background work as a service.
struct StoreService: Service {
    let store: any KeyValueStore

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                try await store.run()
            }
        } catch is CancellationError {
            // Shutting down.
        }
    }
}
