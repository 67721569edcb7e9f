import Foundation
import GRDB

extension SQLiteStore {
    /// Commits a batch of writes in one SQLite transaction (one fsync), then publishes the events.
    /// Runs on the writer thread only.
    func commit(_ batch: [Write]) -> [Result<Outcome, any Error>] {
        let start = revisions.withLock { $0 }
        var revision = start.current
        var compacted = start.compacted
        var events: [WatchEvent] = []
        var grants: [Lease] = []
        var revoked: [LeaseID] = []
        var results: [Result<Outcome, any Error>] = []
        do {
            try pool.write { db in
                let statements = try RowStatements(db, writing: true)
                for write in batch {
                    switch write {
                    case .txn(let request):
                        // `apply` validates everything before it writes, so a refused transaction
                        // leaves no row behind and does not fail its batch-mates; an SQL error
                        // fails the whole batch, which rolls back.
                        do {
                            results.append(
                                .success(
                                    .txn(
                                        try Self.apply(
                                            request, db: db, statements: statements, revision: &revision, compacted: compacted,
                                            events: &events))))
                        } catch let error as StoreError {
                            results.append(.failure(error))
                        }
                    case .grant(let lease):
                        try db.cachedExecute(sql: "INSERT OR REPLACE INTO lease (id, ttl) VALUES (?, ?)", arguments: [lease.id, lease.ttl])
                        grants.append(lease)
                        results.append(.success(.done))
                    case .revoke(let id):
                        if try db.cachedValue(Int64.self, sql: "SELECT id FROM lease WHERE id = ?", arguments: [id]) == nil {
                            results.append(.failure(StoreError(.leaseNotFound, "lease \(id) not found")))
                            continue
                        }
                        let keys = try db.cachedRows(
                            sql: "SELECT key, mod_revision, sub FROM kv WHERE lease = ? ORDER BY key", arguments: [id]
                        ).map(Self.liveRow)
                        if !keys.isEmpty {
                            revision += 1
                            try Self.deleteKeys(keys, db: db, revision: revision, events: &events)
                        }
                        try db.cachedExecute(sql: "DELETE FROM lease WHERE id = ?", arguments: [id])
                        revoked.append(id)
                        results.append(.success(.done))
                    case .compact(let target):
                        if target <= compacted {
                            results.append(.failure(StoreError.compacted(requested: target, compactRevision: compacted)))
                        } else if target > revision {
                            results.append(.failure(StoreError(.futureRevision, "cannot compact to \(target): the current revision is \(revision)")))
                        } else {
                            try Self.compact(db: db, from: compacted, to: target)
                            compacted = target
                            results.append(.success(.done))
                        }
                    }
                }
                try db.cachedExecute(
                    sql: "UPDATE meta SET value = CASE name WHEN 'revision' THEN ? ELSE ? END",
                    arguments: [revision, compacted])
            }
        } catch let closed as StoreError where closed.code == .closed {
            // The server is stopping: not a failure of the store.
            return batch.map { _ in .failure(closed) }
        } catch {
            logger.error("store commit failed", metadata: ["error": "\(error)", "batch.size": "\(batch.count)"])
            let failure = StoreError(.io, "store commit failed: \(error)", underlying: error)
            return batch.map { _ in .failure(failure) }
        }
        revisions.withLock { $0 = Revisions(current: revision, compacted: compacted) }
        // Before any write of the batch is acknowledged (the queue answers after this returns).
        latest.apply(events, revision: revision)
        let now = ContinuousClock.now
        leaseDeadlines.withLock { deadlines in
            for lease in grants { deadlines[lease.id] = (lease.ttl, now + .seconds(lease.ttl)) }
            for id in revoked { deadlines[id] = nil }
        }
        hub.publish(events, revision: revision)
        return results
    }

    /// Runs a transaction without writes in a read snapshot.
    func readOnly(_ request: TxnRequest) throws -> TxnResult {
        do {
            return try readSnapshot { db in
                var (revision, compacted) = try Self.readRevisions(db)
                var events: [WatchEvent] = []
                return try Self.apply(
                    request, db: db, statements: try RowStatements(db, writing: false), revision: &revision, compacted: compacted,
                    events: &events)
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.io, "read failed: \(error)", underlying: error)
        }
    }

    /// Applies one transaction inside the batch's SQLite transaction. Checks everything that
    /// could refuse it before writing, so a refused transaction leaves no trace.
    private static func apply(
        _ request: TxnRequest,
        db: Database,
        statements: RowStatements,
        revision: inout Int64,
        compacted: Int64,
        events: inout [WatchEvent]
    ) throws -> TxnResult {
        var seen: [String: Current?] = [:]
        var succeeded = true
        for compare in request.compares {
            let needsValue = if case .value = compare.target { true } else { false }
            let state: Current?
            if let known = seen[compare.key], !needsValue || known?.hasValue != false {
                state = known
            } else {
                state = try current(compare.key, db: db, statements: statements, withValue: needsValue)
            }
            seen[compare.key] = state
            if !compare.holds(for: state?.kv) {
                succeeded = false
                break
            }
        }
        let ops = succeeded ? request.success : request.failure
        try validate(ops, db: db, revision: revision, compacted: compacted)
        let next = revision + 1
        var wrote = false
        var sub: Int64 = 0
        var results: [TxnOpResult] = []
        for op in ops {
            switch op {
            case .put(let key, let value, let lease):
                let existing: Current?
                if let known = seen[key] {
                    existing = known
                } else {
                    existing = try current(key, db: db, statements: statements, withValue: false)
                }
                let kv = KeyValue(
                    key: key,
                    value: value,
                    createRevision: existing?.kv.createRevision ?? next,
                    modRevision: next,
                    version: (existing?.kv.version ?? 0) + 1,
                    lease: lease == 0 ? nil : lease
                )
                try statements.insertHistory(kv, sub: sub, replacing: existing.map { ($0.kv.modRevision, $0.sub) })
                try statements.upsertCurrent(kv, sub: sub)
                sub += 1
                wrote = true
                events.append(WatchEvent(kind: .put, kv: kv))
                results.append(.put(kv))
            case .delete(let range):
                let (filter, arguments) = keyFilter(range)
                let keys = try db.cachedRows(
                    sql: "SELECT key, mod_revision, sub FROM kv WHERE \(filter) ORDER BY key", arguments: arguments
                ).map(liveRow)
                if !keys.isEmpty {
                    try deleteKeys(keys, db: db, revision: next, firstSub: sub, events: &events)
                    sub += Int64(keys.count)
                    wrote = true
                }
                results.append(.delete(deleted: keys.count))
            case .range(let rangeRequest):
                results.append(.range(try range(rangeRequest, db: db, current: wrote ? next : revision, compacted: compacted)))
            }
        }
        if wrote { revision = next }
        return TxnResult(succeeded: succeeded, revision: revision, results: results)
    }

    /// Everything that can refuse a transaction's operations, checked before any of them writes.
    private static func validate(_ ops: [TxnOp], db: Database, revision: Int64, compacted: Int64) throws {
        var putKeys = Set<String>()
        let deleted = ops.compactMap { op -> KeyRange? in
            if case .delete(let range) = op { return range }
            return nil
        }
        for op in ops {
            switch op {
            case .put(let key, _, let lease):
                // As etcd: a key may be written once per transaction.
                if !putKeys.insert(key).inserted || deleted.contains(where: { $0.contains(key) }) {
                    throw StoreError(.invalidArgument, "duplicate key \"\(key)\" in one transaction")
                }
                if let lease, lease != 0,
                    try db.cachedValue(Int64.self, sql: "SELECT id FROM lease WHERE id = ?", arguments: [lease]) == nil
                {
                    throw StoreError(.leaseNotFound, "lease \(lease) not found")
                }
            case .range(let request):
                guard let wanted = request.revision, wanted > 0 else { continue }
                if wanted > revision {
                    throw StoreError(.futureRevision, "revision \(wanted) is newer than the current revision \(revision)")
                }
                if wanted < compacted {
                    throw StoreError.compacted(requested: wanted, compactRevision: compacted)
                }
            case .delete:
                continue
            }
        }
    }

    /// A live key's current row, with the history row it points at.
    struct Current {
        var kv: KeyValue
        var sub: Int64
        /// False when `kv.value` was not read (it is then empty).
        var hasValue: Bool
    }

    /// A live key and where its current history row is, for writing its tombstone.
    struct LiveRow {
        var key: Data
        var revision: Int64
        var sub: Int64
    }

    static func liveRow(_ row: Row) -> LiveRow {
        LiveRow(key: row[0], revision: row[1], sub: row[2])
    }

    /// Reads the value from history only when a compare needs it: most writes compare revisions.
    private static func current(_ key: String, db: Database, statements: RowStatements, withValue: Bool) throws -> Current? {
        guard withValue else {
            return try statements.current(key).map { Current(kv: $0.kv, sub: $0.sub, hasValue: false) }
        }
        let sql = """
            SELECT kv.key, r.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease, kv.sub
            FROM kv JOIN kv_rev AS r ON r.revision = kv.mod_revision AND r.sub = kv.sub WHERE kv.key = ?
            """
        return try db.cachedRow(sql: sql, arguments: [Data(key.utf8)]).map {
            Current(kv: keyValue($0), sub: $0[6], hasValue: true)
        }
    }

    static func deleteKeys(_ keys: [LiveRow], db: Database, revision: Int64, firstSub: Int64 = 0, events: inout [WatchEvent]) throws {
        var sub = firstSub
        for live in keys {
            try db.cachedExecute(
                sql: """
                    INSERT INTO kv_rev (revision, sub, key, value, create_revision, version, lease, deleted, prev_revision, prev_sub)
                    VALUES (?, ?, ?, x'', 0, 0, NULL, 1, ?, ?)
                    """,
                arguments: [revision, sub, live.key, live.revision, live.sub])
            try db.cachedExecute(sql: "DELETE FROM kv WHERE key = ?", arguments: [live.key])
            sub += 1
            events.append(
                WatchEvent(
                    kind: .delete,
                    kv: KeyValue(
                        key: String(decoding: live.key, as: UTF8.self), value: Data(),
                        createRevision: 0, modRevision: revision, version: 0)))
        }
    }

    /// Drops history that no read at or after `target` can see: superseded rows and tombstones
    /// below it. The latest row of each key at `target` stays, so reads at `target` still work.
    ///
    /// A row is superseded when a later row of its key at or below `target` points back at it;
    /// rows up to the last compaction (`previous`) were swept then, so only the rows since are read.
    private static func compact(db: Database, from previous: Int64, to target: Int64) throws {
        try db.cachedExecute(
            sql: """
                DELETE FROM kv_rev WHERE (revision, sub) IN (
                    SELECT prev_revision, prev_sub FROM kv_rev
                    WHERE revision > ?1 AND revision <= ?2 AND prev_revision IS NOT NULL)
                """,
            arguments: [previous, target])
        try db.cachedExecute(
            sql: "DELETE FROM kv_rev WHERE revision >= ? AND revision < ? AND deleted = 1", arguments: [previous, target])
    }
}
