import Foundation
import GRDB

extension SQLiteStore: WatchHistory {
    /// Runs a range read inside an open transaction (a read snapshot or the writer's transaction).
    static func range(_ request: RangeRequest, db: Database, current: Int64, compacted: Int64) throws -> RangeResult {
        if let revision = request.revision, revision > 0 {
            if revision > current {
                throw StoreError(.futureRevision, "revision \(revision) is newer than the current revision \(current)")
            }
            if revision < compacted {
                throw StoreError.compacted(requested: revision, compactRevision: compacted)
            }
            if revision < current {
                return try historicalRange(request, revision: revision, db: db, current: current)
            }
        }
        let (filter, arguments) = keyFilter(request.range, column: "kv.key")
        if request.countOnly {
            let count = try db.cachedValue(Int.self, sql: "SELECT COUNT(*) FROM kv WHERE \(filter)", arguments: arguments) ?? 0
            return RangeResult(kvs: [], count: count, more: false, revision: current)
        }
        let sql =
            request.keysOnly
            ? """
            SELECT kv.key, x'', create_revision, mod_revision, version, lease FROM kv WHERE \(filter)
            ORDER BY kv.key\(request.descending ? " DESC" : "") LIMIT ?
            """
            : """
            SELECT kv.key, r.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease
            FROM kv JOIN kv_rev AS r ON r.revision = kv.mod_revision AND r.sub = kv.sub WHERE \(filter)
            ORDER BY kv.key\(request.descending ? " DESC" : "") LIMIT ?
            """
        var kvs = try db.cachedRows(sql: sql, arguments: arguments + [sqlLimit(request)]).map(Self.keyValue)
        return try finish(&kvs, request: request, current: current) {
            try db.cachedValue(Int.self, sql: "SELECT COUNT(*) FROM kv WHERE \(filter)", arguments: arguments) ?? 0
        }
    }

    /// A range as it was at `revision`, without a key index on history: keys unchanged since
    /// then are read through their current row; for keys changed since, the first change after
    /// `revision` points back at the row it replaced (none if the key did not exist then).
    /// Costs the history written since `revision` plus the keys in the range.
    private static func historicalRange(_ request: RangeRequest, revision: Int64, db: Database, current: Int64) throws -> RangeResult {
        var changed = Set<Data>()
        var rows: [(key: Data, revision: Int64, sub: Int64)] = []
        let (tailFilter, tailArguments) = keyFilter(request.range, after: "revision > ?", [revision])
        for row in try db.cachedRows(
            sql: "SELECT key, prev_revision, prev_sub FROM kv_rev WHERE \(tailFilter) ORDER BY revision, sub",
            arguments: tailArguments)
        {
            let key: Data = row[0]
            guard changed.insert(key).inserted else { continue }
            if let previous: Int64 = row[1] { rows.append((key, previous, row[2])) }
        }
        let (filter, arguments) = keyFilter(request.range, after: "mod_revision <= ?", [revision])
        for row in try db.cachedRows(sql: "SELECT key, mod_revision, sub FROM kv WHERE \(filter)", arguments: arguments) {
            rows.append((row[0], row[1], row[2]))
        }
        rows.sort { request.descending ? $1.key.lexicographicallyPrecedes($0.key) : $0.key.lexicographicallyPrecedes($1.key) }
        let count = rows.count
        if request.countOnly {
            return RangeResult(kvs: [], count: count, more: false, revision: current)
        }
        var more = false
        if let limit = request.limit, limit > 0, rows.count > limit {
            rows.removeLast(rows.count - limit)
            more = true
        }
        let kvs = try rows.map { pointer in
            guard
                let row = try db.cachedRow(
                    sql: """
                        SELECT key, value, create_revision, revision, version, lease FROM kv_rev
                        WHERE revision = ? AND sub = ?
                        """,
                    arguments: [pointer.revision, pointer.sub])
            else {
                throw StoreError(.io, "history row \(pointer.revision).\(pointer.sub) of a live key is missing")
            }
            var kv = keyValue(row)
            if request.keysOnly { kv.value = Data() }
            return kv
        }
        return RangeResult(kvs: kvs, count: count, more: more, revision: current)
    }

    /// The LIMIT to ask SQLite for: one more than requested, to learn whether there is more;
    /// -1 means no limit.
    private static func sqlLimit(_ request: RangeRequest) -> Int {
        guard let limit = request.limit, limit > 0, limit < Int.max else { return -1 }
        return limit + 1
    }

    private static func finish(
        _ kvs: inout [KeyValue],
        request: RangeRequest,
        current: Int64,
        count: () throws -> Int
    ) throws -> RangeResult {
        guard let limit = request.limit, limit > 0, kvs.count > limit else {
            return RangeResult(kvs: kvs, count: kvs.count, more: false, revision: current)
        }
        kvs.removeLast(kvs.count - limit)
        return RangeResult(kvs: kvs, count: try count(), more: true, revision: current)
    }

    /// SQL condition and arguments selecting `range` on the `key` column, after `condition`.
    static func keyFilter(
        _ range: KeyRange, column: String = "key", after condition: String? = nil, _ arguments: StatementArguments = []
    ) -> (String, StatementArguments) {
        let (lower, upper) = range.bounds
        var filter = (condition.map { $0 + " AND " } ?? "") + "\(column) >= ?"
        var arguments = arguments
        _ = arguments.append(contentsOf: [Data(lower)])
        if let upper {
            filter += " AND \(column) < ?"
            _ = arguments.append(contentsOf: [Data(upper)])
        }
        return (filter, arguments)
    }

    /// Decodes a row whose first columns are, in order: key, value, create_revision,
    /// mod_revision, version, lease (every query of the engine selects them so). By position:
    /// looking columns up by name lowercases and hashes on every row.
    static func keyValue(_ row: Row) -> KeyValue {
        let key: Data = row[0]
        let lease: Int64? = row[5]
        return KeyValue(
            key: String(decoding: key, as: UTF8.self),
            value: row[1] ?? Data(),
            createRevision: row[2],
            modRevision: row[3],
            version: row[4],
            lease: lease
        )
    }

    public func events(in range: KeyRange, from: Int64, through: Int64) async throws -> [WatchEvent] {
        let (filter, arguments) = Self.keyFilter(range, after: "revision >= ? AND revision <= ?", [from, through])
        let events: [WatchEvent]
        do {
            events = try pool.read { db in
                // Checked in the same snapshot as the rows, so a concurrent compaction cannot
                // hand this watcher a history with holes.
                let compacted = try Self.readRevisions(db).compacted
                if from < compacted {
                    throw StoreError.compacted(requested: from, compactRevision: compacted)
                }
                return try db.cachedRows(
                    sql: """
                        SELECT key, value, create_revision, revision AS mod_revision, version, lease, deleted
                        FROM kv_rev WHERE \(filter) ORDER BY revision, sub
                        """,
                    arguments: arguments
                ).map { row in
                    let deleted: Bool = row[6]
                    return WatchEvent(kind: deleted ? .delete : .put, kv: Self.keyValue(row))
                }
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.io, "reading watch history failed: \(error)", underlying: error)
        }
        return events
    }
}
