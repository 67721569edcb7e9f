import Foundation
import GRDB
import GRDBSQLite

/// The statements every put runs, bound and stepped through SQLite's C interface.
///
/// Through GRDB each argument was boxed into an existential array, each cached statement was
/// found by hashing its SQL text, and each row read built a dictionary of its column names: a
/// tenth of a put's server time, more than SQLite's own work on these rows. The statements are
/// still GRDB's cached ones (GRDB compiles and finalizes them); only their use is direct. Taken
/// once per batch, inside the writer's transaction (or once per read-only transaction, which
/// reads current rows only).
struct RowStatements {
    private let database: Database
    /// A live key's current row, without its value: most compares need only its revisions.
    private let currentRow: Statement
    /// Nil on a reader's connection.
    private let insertHistory: Statement?
    private let upsertCurrent: Statement?

    init(_ db: Database, writing: Bool) throws {
        database = db
        currentRow = try db.cachedStatement(sql: "SELECT create_revision, mod_revision, version, lease, sub FROM kv WHERE key = ?")
        guard writing else {
            (insertHistory, upsertCurrent) = (nil, nil)
            return
        }
        insertHistory = try db.cachedStatement(
            sql: """
                INSERT INTO kv_rev (revision, sub, key, value, create_revision, version, lease, deleted, prev_revision, prev_sub)
                VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)
                """)
        upsertCurrent = try db.cachedStatement(
            sql: """
                INSERT INTO kv (key, create_revision, mod_revision, sub, version, lease)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (key) DO UPDATE SET mod_revision = excluded.mod_revision, sub = excluded.sub,
                    version = excluded.version, lease = excluded.lease
                """)
    }

    /// `key`'s current row (its value left empty) and the sub-index of its history row; nil when
    /// the key is not live.
    func current(_ key: String) throws -> (kv: KeyValue, sub: Int64)? {
        let statement = currentRow.sqliteStatement
        try start(currentRow)
        defer { finish(currentRow) }
        bindText(key, at: 1, of: statement)
        switch sqlite3_step(statement) {
        case SQLITE_ROW:
            let lease = sqlite3_column_type(statement, 3) == SQLITE_NULL ? nil : sqlite3_column_int64(statement, 3)
            let kv = KeyValue(
                key: key, value: Data(), createRevision: sqlite3_column_int64(statement, 0),
                modRevision: sqlite3_column_int64(statement, 1), version: sqlite3_column_int64(statement, 2), lease: lease)
            return (kv, sqlite3_column_int64(statement, 4))
        case SQLITE_DONE:
            return nil
        case let code:
            throw failure(code, currentRow)
        }
    }

    /// Appends `kv` to history at (`kv.modRevision`, `sub`), pointing back at the row it replaces.
    func insertHistory(_ kv: KeyValue, sub: Int64, replacing previous: (revision: Int64, sub: Int64)?) throws {
        let insertHistory = try writable(insertHistory)
        let statement = insertHistory.sqliteStatement
        try start(insertHistory)
        defer { finish(insertHistory) }
        sqlite3_bind_int64(statement, 1, kv.modRevision)
        sqlite3_bind_int64(statement, 2, sub)
        bindText(kv.key, at: 3, of: statement)
        kv.value.withUnsafeBytes { bytes in bindBlob(bytes, at: 4, of: statement) }
        sqlite3_bind_int64(statement, 5, kv.createRevision)
        sqlite3_bind_int64(statement, 6, kv.version)
        bind(kv.lease, at: 7, of: statement)
        bind(previous?.revision, at: 8, of: statement)
        bind(previous?.sub, at: 9, of: statement)
        try step(insertHistory)
    }

    /// Makes `kv` the key's current row, pointing at its history row (`kv.modRevision`, `sub`).
    func upsertCurrent(_ kv: KeyValue, sub: Int64) throws {
        let upsertCurrent = try writable(upsertCurrent)
        let statement = upsertCurrent.sqliteStatement
        try start(upsertCurrent)
        defer { finish(upsertCurrent) }
        bindText(kv.key, at: 1, of: statement)
        sqlite3_bind_int64(statement, 2, kv.createRevision)
        sqlite3_bind_int64(statement, 3, kv.modRevision)
        sqlite3_bind_int64(statement, 4, sub)
        sqlite3_bind_int64(statement, 5, kv.version)
        bind(kv.lease, at: 6, of: statement)
        try step(upsertCurrent)
    }

    // MARK: Stepping

    private func writable(_ statement: Statement?) throws -> Statement {
        guard let statement else { throw StoreError(.invalidArgument, "a read-only transaction tried to write") }
        return statement
    }

    /// SQLite copies a transient argument before the bind returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    private func start(_ statement: Statement) throws {
        let code = sqlite3_reset(statement.sqliteStatement)
        if code != SQLITE_OK { throw failure(code, statement) }
    }

    /// Leaves the statement reset with no arguments held, as GRDB leaves its own.
    private func finish(_ statement: Statement) {
        sqlite3_reset(statement.sqliteStatement)
        sqlite3_clear_bindings(statement.sqliteStatement)
    }

    private func step(_ statement: Statement) throws {
        let code = sqlite3_step(statement.sqliteStatement)
        if code != SQLITE_DONE { throw failure(code, statement) }
    }

    /// Keys are stored as blobs of their UTF-8 bytes.
    private func bindText(_ text: String, at index: Int32, of statement: SQLiteStatement) {
        var text = text
        text.withUTF8 { bytes in bindBlob(UnsafeRawBufferPointer(bytes), at: index, of: statement) }
    }

    /// An empty blob is bound as a zero-length blob, not NULL (the columns are NOT NULL).
    private func bindBlob(_ bytes: UnsafeRawBufferPointer, at index: Int32, of statement: SQLiteStatement) {
        if let base = bytes.baseAddress, !bytes.isEmpty {
            sqlite3_bind_blob(statement, index, base, Int32(bytes.count), Self.transient)
        } else {
            sqlite3_bind_zeroblob(statement, index, 0)
        }
    }

    private func bind(_ value: Int64?, at index: Int32, of statement: SQLiteStatement) {
        if let value {
            sqlite3_bind_int64(statement, index, value)
        } else {
            sqlite3_bind_null(statement, index)
        }
    }

    private func failure(_ code: Int32, _ statement: Statement) -> DatabaseError {
        DatabaseError(
            resultCode: ResultCode(rawValue: code), message: sqlite3_errmsg(database.sqliteConnection).map { String(cString: $0) },
            sql: statement.sql)
    }
}
