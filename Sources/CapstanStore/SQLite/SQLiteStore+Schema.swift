import GRDB

extension SQLiteStore {
    /// Every schema change, registered in one place.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: mvcc key-value") { db in
            // Current state: one row per live key (v2 moves the value out to history).
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
        migrator.registerMigration("v2: values only in history") { db in
            // A write used to store its value twice (current row and history row) and to index
            // history by key: three B-tree pages dirtied per key written, most of a put's disk
            // traffic. Now the current row only points at its history row, history is appended
            // in revision order, and each history row points at the key's row it replaced
            // (`prev_*`, nil after a create), which is what reads at an old revision and
            // compaction follow instead of a key index.
            try db.execute(sql: """
                CREATE TABLE kv_v2 (
                    key BLOB PRIMARY KEY,
                    create_revision INTEGER NOT NULL,
                    mod_revision INTEGER NOT NULL,
                    sub INTEGER NOT NULL,
                    version INTEGER NOT NULL,
                    lease INTEGER
                ) WITHOUT ROWID;
                CREATE TABLE kv_rev_v2 (
                    revision INTEGER NOT NULL,
                    sub INTEGER NOT NULL,
                    key BLOB NOT NULL,
                    value BLOB NOT NULL,
                    create_revision INTEGER NOT NULL,
                    version INTEGER NOT NULL,
                    lease INTEGER,
                    deleted INTEGER NOT NULL,
                    prev_revision INTEGER,
                    prev_sub INTEGER,
                    PRIMARY KEY (revision, sub)
                ) WITHOUT ROWID;
                INSERT INTO kv_rev_v2
                    SELECT revision, sub, key, value, create_revision, version, lease, deleted,
                        CASE WHEN LAG(deleted) OVER w = 0 THEN LAG(revision) OVER w END,
                        CASE WHEN LAG(deleted) OVER w = 0 THEN LAG(sub) OVER w END
                    FROM kv_rev WINDOW w AS (PARTITION BY key ORDER BY revision, sub);
                INSERT INTO kv_v2
                    SELECT kv.key, kv.create_revision, kv.mod_revision, r.sub, kv.version, kv.lease
                    FROM kv JOIN kv_rev AS r ON r.revision = kv.mod_revision AND r.key = kv.key;
                DROP TABLE kv;
                DROP TABLE kv_rev;
                ALTER TABLE kv_v2 RENAME TO kv;
                ALTER TABLE kv_rev_v2 RENAME TO kv_rev;
                CREATE INDEX kv_lease ON kv(lease) WHERE lease IS NOT NULL;
                """)
        }
        return migrator
    }
}
