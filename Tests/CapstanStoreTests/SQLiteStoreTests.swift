import CapstanStore
import CapstanTesting
import Foundation
import Testing

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

    @Test func openingAnUnwritablePathFailsClearly() throws {
        #expect(throws: StoreError.self) { _ = try SQLiteStore(path: "/proc/capstan/nope.sqlite") }
    }
}
