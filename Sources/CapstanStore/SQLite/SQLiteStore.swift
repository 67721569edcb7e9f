import Foundation
import GRDB
import Logging
import Synchronization

/// The embedded engine: one SQLite file in WAL mode, fsynced on every commit, writes
/// group-committed, watches fed in-process.
public final class SQLiteStore: KeyValueStore, Sendable {
    enum Write: Sendable {
        case txn(TxnRequest)
        case grant(Lease)
        case revoke(LeaseID)
        case compact(Int64)
    }

    enum Outcome: Sendable {
        case txn(TxnResult)
        case done
    }

    struct Revisions {
        var current: Int64
        var compacted: Int64
    }

    let pool: GatedPool
    let databasePath: String
    let hub: WatchHub
    let logger: Logger
    /// Only the writer thread changes it; readers take it for status.
    let revisions: Mutex<Revisions>
    /// Live leases with their TTL and deadline, in memory so a keep-alive touches no disk. Like
    /// etcd after a leader change, a restart gives every lease a fresh TTL rather than expiring
    /// them all at once.
    let leaseDeadlines: Mutex<[LeaseID: (ttl: Int64, deadline: ContinuousClock.Instant)]>
    /// Recently read keys' current rows, which answer gets at the latest revision.
    let latest: LatestValues
    private let writes: WriteQueue<Write, Outcome>

    /// Opens (creating if needed) the store in `path`.
    ///
    /// - Parameters:
    ///   - watchBufferLimit: events a watcher may fall behind before it is moved from the live
    ///     feed back to catching up from disk.
    ///   - latestValuesBudget: bytes of recently read keys and values kept in memory to answer
    ///     gets without SQLite (see `LatestValues`); 0 reads every get from the file.
    ///   - commitGatherWindow: how long a group commit shorter than the one before waits for the
    ///     rest of it (see `WriteQueue`); zero commits whatever is queued at once.
    public init(
        path: String, watchBufferLimit: Int = 10_000, latestValuesBudget: Int = SQLiteStore.defaultLatestValuesBudget,
        commitGatherWindow: Duration = SQLiteStore.defaultCommitGatherWindow, logger: Logger = Logger(label: "capstan.store.sqlite")
    ) throws {
        var configuration = Configuration()
        configuration.label = "capstan.store"
        configuration.maximumReaderCount = 8
        let pool: DatabasePool
        try Self.keepPrivate(path, logger: logger)
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            // FULL makes every WAL commit fsync before it returns: an acknowledged write survives a
            // crash of the process or the machine. Set on the writer after opening, because the
            // pool's WAL setup switches it to NORMAL.
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                // Checkpoints normally run in the background (`runCheckpoints`); the writer only
                // steps in as a safety net when the WAL grows past ~40 MiB.
                try db.execute(sql: "PRAGMA wal_autocheckpoint = 10000")
            }
            try Self.migrator.migrate(pool)
        } catch {
            throw StoreError(.io, "cannot open store at \(path): \(error)", underlying: error)
        }
        let (revisions, leases) = try pool.read { db -> (Revisions, [Lease]) in
            let revision = try db.cachedValue(Int64.self, sql: "SELECT value FROM meta WHERE name = 'revision'") ?? 0
            let compacted = try db.cachedValue(Int64.self, sql: "SELECT value FROM meta WHERE name = 'compact_revision'") ?? 0
            let leases = try db.cachedRows(sql: "SELECT id, ttl FROM lease").map { Lease(id: $0["id"], ttl: $0["ttl"]) }
            return (Revisions(current: revision, compacted: compacted), leases)
        }
        let now = ContinuousClock.now
        self.pool = GatedPool(pool)
        self.databasePath = path
        self.logger = logger
        self.hub = WatchHub(revision: revisions.current, bufferLimit: watchBufferLimit)
        self.revisions = Mutex(revisions)
        self.latest = LatestValues(revision: revisions.current, budget: latestValuesBudget)
        self.leaseDeadlines = Mutex(Dictionary(uniqueKeysWithValues: leases.map { ($0.id, ($0.ttl, now + .seconds($0.ttl))) }))
        let box = WeakBox()
        self.writes = WriteQueue(label: "capstan.store.writer", gatherWindow: commitGatherWindow) { batch in
            guard let store = box.store else {
                return batch.map { _ in .failure(StoreError(.closed, "store is closed")) }
            }
            return store.commit(batch)
        }
        box.store = self
    }

    /// How long a short group commit waits for the rest of it by default: 250 µs, a tenth of a
    /// put's round trip at 16 clients here, against the flush and WAL pages it saves per put.
    public static let defaultCommitGatherWindow: Duration = .microseconds(250)

    /// Memory held for recently read keys' current values by default: 32 MiB.
    public static let defaultLatestValuesBudget = 32 << 20

    /// The hot path of `GET`: one key at the latest revision, from memory when it is held, else
    /// in one statement (a single statement is a consistent snapshot by itself, so it needs no
    /// BEGIN/COMMIT around it), which then holds it. Answers nil when the key is absent (the
    /// caller then reads the revision in a transaction).
    private func readLatest(_ key: String, keysOnly: Bool) throws -> RangeResult? {
        if let (kv, revision) = latest.lookup(key) {
            return RangeResult(kvs: [keysOnly ? Self.withoutValue(kv) : kv], count: 1, more: false, revision: revision)
        }
        let row = try pool.unsafeRead { db in
            try db.cachedRow(
                sql: keysOnly
                    ? """
                    SELECT key, x'', create_revision, mod_revision, version, lease,
                        (SELECT value FROM meta WHERE name = 'revision')
                    FROM kv WHERE key = ?
                    """
                    : """
                    SELECT kv.key, r.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease,
                        (SELECT value FROM meta WHERE name = 'revision')
                    FROM kv JOIN kv_rev AS r ON r.revision = kv.mod_revision AND r.sub = kv.sub WHERE kv.key = ?
                    """,
                arguments: [Data(key.utf8)])
        }
        guard let row else { return nil }
        let kv = Self.keyValue(row)
        let revision: Int64 = row[6]
        if !keysOnly { latest.fill(kv, readAt: revision) }
        return RangeResult(kvs: [kv], count: 1, more: false, revision: revision)
    }

    private static func withoutValue(_ kv: KeyValue) -> KeyValue {
        var kv = kv
        kv.value = Data()
        return kv
    }

    /// Runs `body` in a read transaction on the calling thread (no async hop).
    func readSnapshot<T>(_ body: (Database) throws -> T) throws -> T {
        try pool.read(body)
    }

    /// The synchronous level of the writer connection (2 = FULL), for tests.
    public func writerSynchronousLevel() throws -> Int {
        try pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    // MARK: KeyValueStore

    public func range(_ request: RangeRequest) async throws -> RangeResult {
        do {
            if case .key(let key) = request.range, request.revision == nil || request.revision == 0,
                !request.countOnly, let found = try readLatest(key, keysOnly: request.keysOnly)
            {
                return found
            }
            // A synchronous read: GCD runs it on this thread when a reader is free, which spares the
            // thread hops of an async read; point reads from the page cache take microseconds.
            return try readSnapshot { db in
                // Both from the same snapshot as the rows: a compaction committing meanwhile
                // cannot make this read see pruned history as if it were whole.
                let (current, compacted) = try Self.readRevisions(db)
                return try Self.range(request, db: db, current: current, compacted: compacted)
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.io, "range read failed: \(error)", underlying: error)
        }
    }

    public func txn(_ request: TxnRequest) async throws -> TxnResult {
        if request.isReadOnly {
            // Nothing to write: evaluate it in a read snapshot, off the writer thread.
            return try readOnly(request)
        }
        guard case .txn(let result) = try await writes.submit(.txn(request)) else {
            throw StoreError(.io, "writer answered a transaction without its result")
        }
        return result
    }

    /// Closes the database once the write in progress is done: later calls fail, and the files
    /// are whole (the WAL checkpointed) when this returns. A server closes its store when it
    /// stops, so a release of the last reference later on (a background task's) cannot write
    /// into a data directory that is being removed.
    public func close() {
        latest.close()
        do {
            try pool.close()
        } catch {
            logger.warning("closing the store failed", metadata: ["error": "\(error)"])
        }
    }

    /// Enqueued on the writer before returning: submissions commit in the order they were made.
    public func submit(_ request: TxnRequest) async -> SubmittedTxn {
        let submitted = SubmittedTxn()
        if request.isReadOnly {
            submitted.complete(Result { try readOnly(request) })
            return submitted
        }
        writes.enqueue(.txn(request)) { outcome in
            submitted.complete(
                outcome.flatMap { outcome in
                    guard case .txn(let result) = outcome else {
                        return .failure(StoreError(.io, "writer answered a transaction without its result"))
                    }
                    return .success(result)
                })
        }
        return submitted
    }

    public func watch(_ range: KeyRange, fromRevision revision: Int64?) -> WatchStream {
        WatchStream { [hub] in
            HubWatchCursor(hub: hub, history: self, range: range, fromRevision: revision)
        }
    }

    public func compact(upTo revision: Int64) async throws {
        _ = try await writes.submit(.compact(revision))
    }

    public func status() async throws -> StoreStatus {
        let watchers = hub.count
        return revisions.withLock { StoreStatus(revision: $0.current, compactRevision: $0.compacted, watchers: watchers) }
    }

    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.runLeaseExpiry() }
            group.addTask { try await self.runCheckpoints() }
            try await group.waitForAll()
        }
    }

    /// Submits a write through the group-commit queue.
    func submit(_ write: Write) async throws -> Outcome {
        try await writes.submit(write)
    }

    /// The current and compacted revisions as of `db`'s snapshot.
    static func readRevisions(_ db: Database) throws -> (current: Int64, compacted: Int64) {
        // One statement for both: this runs on every read.
        var current: Int64 = 0
        var compacted: Int64 = 0
        for row in try db.cachedRows(sql: "SELECT name = 'revision', value FROM meta WHERE name IN ('revision', 'compact_revision')") {
            if row[0] as Bool { current = row[1] } else { compacted = row[1] }
        }
        return (current, compacted)
    }
}

/// Lets the write queue's closure reach the store without a retain cycle.
private final class WeakBox: @unchecked Sendable {
    // Set once in init before any write can be submitted; read only afterwards.
    weak var store: SQLiteStore?
}
