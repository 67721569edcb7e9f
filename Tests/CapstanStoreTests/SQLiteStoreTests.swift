import CapstanTesting
import Foundation
import GRDB
import Testing

@testable import CapstanStore

/// Behaviour specific to the SQLite engine: persistence across reopen and slow watchers.
@Suite("SQLite engine")
struct SQLiteStoreTests {
    @Test func stateSurvivesReopening() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("capstan.sqlite")
        let (written, lease): (KeyValue, Lease) = try await {
            let store = try SQLiteStore(path: path)
            try await store.put("a", Data("1".utf8))
            let lease = try await store.grantLease(ttl: 600)
            let written = try await store.put("b", Data("2".utf8), lease: lease.id)
            try await store.compact(upTo: 1)
            return (written, lease)
        }()
        let reopened = try SQLiteStore(path: path)
        let status = try await reopened.status()
        #expect(status.revision == written.modRevision)
        #expect(status.compactRevision == 1)
        #expect(try await reopened.get("b") == written)
        #expect(try await reopened.keepAlive(lease.id) == 600)
        let next = try await reopened.put("c", Data("3".utf8))
        #expect(next.modRevision == written.modRevision + 1)
    }

    /// A close waits for the reads and writes in progress and refuses later ones with `closed`:
    /// GRDB's own close let a read that had just started run on a closed connection, which
    /// crashed a stopping server (about one stop in three with a job's event stream open).
    @Test func closingWhileReadingAndWritingFailsCleanly() async throws {
        for round in 0..<10 {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let store = try SQLiteStore(path: directory.file("capstan.sqlite"))
            for index in 0..<50 { try await store.put("k/\(index)", Data(repeating: 7, count: 256)) }
            let endings = await withTaskGroup(of: String.self) { group in
                for worker in 0..<6 {
                    group.addTask { await Self.useUntilClosed(store, worker: worker) }
                }
                // Close while the workers are busy (each needs far longer than this to finish).
                try? await Task.sleep(for: .milliseconds(5 + round))
                store.close()
                return await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(endings.allSatisfy { $0 == "closed" }, "\(endings)")
            await #expect(throws: StoreError.self) { try await store.get("k/1") }
        }
    }

    /// Reads, watch catch-ups and writes in turn until the store refuses one: "closed", or what
    /// else went wrong.
    static func useUntilClosed(_ store: SQLiteStore, worker: Int) async -> String {
        for step in 0..<100_000 {
            do {
                switch (worker + step) % 3 {
                case 0: _ = try await store.get("k/\(step % 50)")
                case 1: _ = try await store.events(in: .prefix("k/"), from: 2, through: 40)
                default: _ = try await store.put("k/\(step % 50)", Data("x".utf8))
                }
            } catch let error as StoreError where error.code == .closed {
                return "closed"
            } catch {
                return "\(error)"
            }
        }
        return "never closed"
    }

    /// Acknowledged means fsynced: the writer commits with synchronous=FULL (GRDB's WAL setup
    /// would leave NORMAL, which skips the fsync at commit).
    @Test func writerFsyncsEveryCommit() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteStore(path: directory.file("capstan.sqlite"))
        #expect(try store.writerSynchronousLevel() == 2)
    }

    /// The WAL is copied into the database file in the background, not by a writer's commit.
    @Test func backgroundCheckpointsCopyTheWALIntoTheDatabase() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("capstan.sqlite")
        let store = try SQLiteStore(path: path)
        let size = { ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0 }
        let before = size()
        for index in 0..<300 { try await store.put("w/\(index)", Data(repeating: 7, count: 512)) }
        #expect(size() == before, "without the background checkpointer the writes stay in the WAL")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            defer { group.cancelAll() }
            try await eventually("the checkpointer to copy the WAL") { size() > before + 100_000 }
        }
    }

    @Test func readOnlyTransactionsDoNotBumpTheRevision() async throws {
        try await StoreEngine.sqlite.withStore { store in
            try await store.put("ro/a", Data("1".utf8))
            let before = try await store.status().revision
            let read = try await store.txn(
                TxnRequest(
                    compares: [.exists("ro/a")],
                    success: [.range(RangeRequest(.key("ro/a"))), .range(RangeRequest(.key("ro/b")))]))
            #expect(read.succeeded)
            #expect(read.revision == before)
            guard case .range(let first) = read.results[0] else {
                Issue.record("no range result")
                return
            }
            #expect(first.kvs.map(\.key) == ["ro/a"])
        }
    }

    @Test func rangeDescendingReversesKeyOrder() async throws {
        try await StoreEngine.sqlite.withStore { store in
            for key in ["h@1", "h@3", "h@2"] { try await store.put(key, Data()) }
            let newest = try await store.range(RangeRequest(.prefix("h@"), limit: 2, descending: true))
            #expect(newest.kvs.map(\.key) == ["h@3", "h@2"])
            #expect(newest.more)
        }
    }

    /// A watcher that does not keep up is moved off the live feed and catches up from disk: it
    /// still sees every event, in order, once.
    @Test func slowWatcherCatchesUpWithoutAGap() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteStore(path: directory.file("capstan.sqlite"), watchBufferLimit: 8)
        let start = try await store.status().revision
        var iterator = store.watch(.prefix("s/"), fromRevision: start + 1).makeAsyncIterator()
        let first = try await store.put("s/0", Data("0".utf8))
        #expect(try await iterator.next()?.map(\.revision) == [first.modRevision])
        // Far more than the buffer while the watcher is not reading.
        for index in 1..<200 { try await store.put("s/\(index % 7)", Data("\(index)".utf8)) }
        #expect(try await store.status().watchers == 0, "the overflowing watcher should have left the live feed")
        var revisions: [Int64] = []
        while revisions.count < 199, let batch = try await iterator.next() { revisions += batch.map(\.revision) }
        #expect(revisions == Array((first.modRevision + 1)...(first.modRevision + 199)))
        let live = try await store.put("s/live", Data())
        #expect(try await iterator.next()?.map(\.revision) == [live.modRevision])
        #expect(try await store.status().watchers == 1)
    }

    /// Compaction frees the rows no read at or after its point needs: superseded versions and
    /// tombstones below it.
    @Test func compactionDropsSupersededRowsAndOldTombstones() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("capstan.sqlite")
        let store = try SQLiteStore(path: path)
        for value in ["1", "2", "3"] { try await store.put("a", Data(value.utf8)) }
        try await store.put("b", Data("1".utf8))
        try await store.delete(.key("b"))
        let last = try await store.put("c", Data("1".utf8))
        try await store.put("a", Data("4".utf8))
        let historyRows = { try DatabaseQueue(path: path).read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM kv_rev") } }
        #expect(try historyRows() == 7)
        try await store.compact(upTo: last.modRevision)
        // Left: a's version 3 (still the state at the compaction point), c, and a's version 4.
        #expect(try historyRows() == 3)
        #expect(try await store.range(RangeRequest(.prefix(""), revision: last.modRevision)).kvs.map(\.key) == ["a", "c"])
        try await store.compact(upTo: last.modRevision + 1)
        #expect(try historyRows() == 2)
    }

    /// A store written by the first schema (values in the current rows, history indexed by key)
    /// opens with the same contents, history and watch replay.
    @Test func firstSchemaMigratesWithItsHistory() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("capstan.sqlite")
        let old = try DatabaseQueue(path: path)
        try SQLiteStore.migrator.migrate(old, upTo: "v1: mvcc key-value")
        try await old.write { db in
            // a: put at 1 and 2; b: put at 3, deleted at 4, put again at 5; c: put at 6 with sub 1.
            try db.execute(
                sql: """
                    INSERT INTO kv_rev (revision, sub, key, value, create_revision, version, lease, deleted) VALUES
                        (1, 0, x'61', x'31', 1, 1, NULL, 0), (2, 0, x'61', x'32', 1, 2, NULL, 0),
                        (3, 0, x'62', x'31', 3, 1, NULL, 0), (4, 0, x'62', x'', 0, 0, NULL, 1),
                        (5, 0, x'62', x'33', 5, 1, NULL, 0), (6, 0, x'64', x'31', 6, 1, NULL, 0),
                        (6, 1, x'63', x'31', 6, 1, NULL, 0);
                    INSERT INTO kv (key, value, create_revision, mod_revision, version, lease) VALUES
                        (x'61', x'32', 1, 2, 2, NULL), (x'62', x'33', 5, 5, 1, NULL),
                        (x'63', x'31', 6, 6, 1, NULL), (x'64', x'31', 6, 6, 1, NULL);
                    UPDATE meta SET value = 6 WHERE name = 'revision';
                    """)
        }
        try old.close()
        let store = try SQLiteStore(path: path)
        let text = { (kvs: [KeyValue]) in kvs.map { "\($0.key)=\(String(decoding: $0.value, as: UTF8.self))" } }
        #expect(text(try await store.range(RangeRequest(.prefix(""))).kvs) == ["a=2", "b=3", "c=1", "d=1"])
        #expect(text(try await store.range(RangeRequest(.prefix(""), revision: 3)).kvs) == ["a=2", "b=1"])
        #expect(text(try await store.range(RangeRequest(.prefix(""), revision: 4)).kvs) == ["a=2"])
        #expect(try await store.get("c")?.modRevision == 6)
        let updated = try await store.put("c", Data("2".utf8))
        #expect(updated.version == 2 && updated.createRevision == 6)
        #expect(text(try await store.range(RangeRequest(.key("c"), revision: 6)).kvs) == ["c=1"])
        var replay = store.watch(.prefix(""), fromRevision: 1).makeAsyncIterator()
        var events: [WatchEvent] = []
        while events.count < 8, let batch = try await replay.next() { events += batch }
        #expect(events.map(\.revision) == [1, 2, 3, 4, 5, 6, 6, 7])
        try await store.compact(upTo: 5)
        #expect(text(try await store.range(RangeRequest(.prefix(""), revision: 5)).kvs) == ["a=2", "b=3"])
    }

    @Test func openingAnUnwritablePathFailsClearly() throws {
        #expect(throws: StoreError.self) { _ = try SQLiteStore(path: "/proc/capstan/nope.sqlite") }
    }
}
