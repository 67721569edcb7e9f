import GRDB

extension SQLiteStore {
    /// Every schema change, registered in one place.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: mvcc key-value") { db in
            // Current state: one row per live key.
            try db.execute(sql: """
                CREATE TABLE kv (
                    key BLOB PRIMARY KEY,
                    value BLOB NOT NULL,
                    create_revision INTEGER NOT NULL,
                    mod_revision INTEGER NOT NULL,
                    version INTEGER NOT NULL,
                    lease INTEGER
                ) WITHOUT ROWID;
                CREATE INDEX kv_lease ON kv(lease) WHERE lease IS NOT NULL;
                """)
            // History: one row per change (put or tombstone), ordered by (revision, sub).
            try db.execute(sql: """
                CREATE TABLE kv_rev (
                    revision INTEGER NOT NULL,
                    sub INTEGER NOT NULL,
                    key BLOB NOT NULL,
                    value BLOB NOT NULL,
                    create_revision INTEGER NOT NULL,
                    version INTEGER NOT NULL,
                    lease INTEGER,
                    deleted INTEGER NOT NULL,
                    PRIMARY KEY (revision, sub)
                ) WITHOUT ROWID;
                CREATE INDEX kv_rev_key ON kv_rev(key, revision);
                """)
            try db.execute(sql: """
                CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
                INSERT INTO meta (name, value) VALUES ('revision', 0), ('compact_revision', 0);
                CREATE TABLE lease (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL);
                """)
        }
        return migrator
    }
}
