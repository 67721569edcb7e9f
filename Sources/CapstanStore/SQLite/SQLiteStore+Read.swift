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
        let (filter, arguments) = keyFilter(request.range)
        if request.countOnly {
            let count = try db.cachedValue(Int.self, sql: "SELECT COUNT(*) FROM kv WHERE \(filter)", arguments: arguments) ?? 0
            return RangeResult(kvs: [], count: count, more: false, revision: current)
        }
        let columns = request.keysOnly ? "key, x'' AS value" : "key, value"
        let sql = """
            SELECT \(columns), create_revision, mod_revision, version, lease FROM kv WHERE \(filter)
            ORDER BY key\(request.descending ? " DESC" : "") LIMIT ?
            """
        var kvs = try db.cachedRows(sql: sql, arguments: arguments + [sqlLimit(request)]).map(Self.keyValue)
        return try finish(&kvs, request: request, current: current) {
            try db.cachedValue(Int.self, sql: "SELECT COUNT(*) FROM kv WHERE \(filter)", arguments: arguments) ?? 0
        }
    }

    private static func historicalRange(_ request: RangeRequest, revision: Int64, db: Database, current: Int64) throws -> RangeResult {
        let (filter, arguments) = keyFilter(request.range, after: "revision <= ?", [revision])
        // SQLite takes the bare columns from the row holding MAX(revision) of each group.
        let latest = """
            SELECT key, value, create_revision, MAX(revision) AS mod_revision, version, lease, deleted
            FROM kv_rev WHERE \(filter) GROUP BY key
            """
        let sql = "SELECT * FROM (\(latest)) WHERE deleted = 0 ORDER BY key\(request.descending ? " DESC" : "") LIMIT ?"
        let count: () throws -> Int = {
            try db.cachedValue(Int.self, sql: "SELECT COUNT(*) FROM (\(latest)) WHERE deleted = 0", arguments: arguments) ?? 0
        }
        if request.countOnly {
            return RangeResult(kvs: [], count: try count(), more: false, revision: current)
        }
        var kvs = try db.cachedRows(sql: sql, arguments: arguments + [sqlLimit(request)]).map(Self.keyValue)
        if request.keysOnly {
            for index in kvs.indices { kvs[index].value = Data() }
        }
        return try finish(&kvs, request: request, current: current, count: count)
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
    static func keyFilter(_ range: KeyRange, after condition: String? = nil, _ arguments: StatementArguments = [])
        -> (String, StatementArguments)
    {
        let (lower, upper) = range.bounds
        var filter = (condition.map { $0 + " AND " } ?? "") + "key >= ?"
        var arguments = arguments
        _ = arguments.append(contentsOf: [Data(lower)])
        if let upper {
            filter += " AND key < ?"
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
            events = try await pool.read { db in
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
