import CapstanTesting
import Foundation
import Synchronization
import Testing

@testable import CapstanStore

/// The SQLite engine's memory of recently read keys (`LatestValues`): gets answered without the
/// reader pool, kept exact by the writer, bounded by its budget.
@Suite("SQLite latest values")
struct SQLiteLatestValuesTests {
    private func row(_ key: String, _ value: String, revision: Int64, version: Int64 = 1) -> KeyValue {
        KeyValue(key: key, value: Data(value.utf8), createRevision: revision - version + 1, modRevision: revision, version: version)
    }

    /// With every reader connection held by a long read, a get of a key read before still answers:
    /// it needs no connection. (Before, it waited for a reader to come free.)
    @Test func aHeldKeyIsReadWithoutAReaderConnection() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteStore(path: directory.file("capstan.sqlite"))
        defer { store.close() }
        let written = try await store.put("k", Data("v".utf8))
        #expect(try await store.get("k") == written)
        let hitsBefore = store.latest.usage.hits

        let readers = 8  // the pool's maximumReaderCount
        let held = HeldReaders()
        async let holders: Void = withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<readers {
                group.addTask {
                    try await onThread {
                        try store.readSnapshot { _ in
                            held.count.add(1, ordering: .sequentiallyConsistent)
                            held.release.wait()
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let read: Result<KeyValue?, any Error>
        do {
            try await eventually("every reader connection held") { held.count.load(ordering: .sequentiallyConsistent) == readers }
            read = .success(try await withTimeout(.seconds(5), "a get while every reader is busy") { try await store.get("k") })
        } catch {
            read = .failure(error)
        }
        for _ in 0..<readers { held.release.signal() }
        try await holders
        #expect(try read.get() == written)
        #expect(store.latest.usage.hits == hitsBefore + 1)
    }

    /// A row read from a snapshot older than the last commit applied would undo that commit:
    /// it is not held; one read at the latest revision is.
    @Test func aRowReadBeforeACommitIsNotHeld() {
        let latest = LatestValues(revision: 5, budget: 1 << 20)
        latest.apply([WatchEvent(kind: .put, kv: row("k", "new", revision: 6, version: 2))], revision: 6)
        latest.fill(row("k", "old", revision: 5), readAt: 5)
        #expect(latest.lookup("k") == nil)
        // Nor one read ahead of what was applied (the writer has committed, not yet applied).
        latest.fill(row("k", "newer", revision: 7, version: 3), readAt: 7)
        #expect(latest.lookup("k") == nil)
        latest.fill(row("k", "new", revision: 6, version: 2), readAt: 6)
        #expect(latest.lookup("k")?.kv == row("k", "new", revision: 6, version: 2))
        #expect(latest.lookup("k")?.revision == 6)
        // A commit that does not touch the key moves the revision on and keeps the row.
        latest.apply([WatchEvent(kind: .put, kv: row("other", "x", revision: 7))], revision: 7)
        #expect(latest.lookup("k")?.revision == 7)
        #expect(latest.lookup("other") == nil)
        latest.apply([WatchEvent(kind: .delete, kv: KeyValue(key: "k", value: Data(), createRevision: 0, modRevision: 8, version: 0))], revision: 8)
        #expect(latest.lookup("k") == nil)
    }

    @Test func memoryStaysWithinItsBudget() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let budget = 64 << 10
        let store = try SQLiteStore(path: directory.file("capstan.sqlite"), latestValuesBudget: budget)
        defer { store.close() }
        var written: [String: KeyValue] = [:]
        for index in 0..<200 {
            let key = "b/\(index)"
            written[key] = try await store.put(key, Data(repeating: UInt8(index % 251), count: 1024))
        }
        for _ in 0..<2 {
            for (key, kv) in written {
                #expect(try await store.get(key) == kv)
            }
        }
        let usage = store.latest.usage
        #expect(usage.bytes <= budget)
        #expect(usage.keys > 0 && usage.keys < written.count)
        // A row over a sixteenth of the budget is read from the file every time.
        let big = try await store.put("big", Data(repeating: 1, count: budget / 16))
        #expect(try await store.get("big") == big)
        #expect(store.latest.lookup("big") == nil)
    }

    @Test func aZeroBudgetHoldsNothing() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteStore(path: directory.file("capstan.sqlite"), latestValuesBudget: 0)
        defer { store.close() }
        let written = try await store.put("k", Data("v".utf8))
        #expect(try await store.get("k") == written)
        #expect(try await store.get("k") == written)
        #expect(store.latest.usage.keys == 0)
    }

    /// Memory starts empty on every open: a reopened store answers what was committed last.
    @Test func aReopenedStoreAnswersTheLastCommit() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("capstan.sqlite")
        let last: KeyValue = try await {
            let store = try SQLiteStore(path: path)
            defer { store.close() }
            try await store.put("k", Data("1".utf8))
            _ = try await store.get("k")
            let last = try await store.put("k", Data("2".utf8))
            #expect(try await store.get("k") == last)
            #expect(store.latest.usage.keys == 1)
            return last
        }()
        let reopened = try SQLiteStore(path: path)
        defer { reopened.close() }
        #expect(reopened.latest.usage.keys == 0)
        #expect(try await reopened.get("k") == last)
        #expect(try await reopened.get("k") == last)
        #expect(reopened.latest.usage.hits == 1)
    }

    /// A closed store answers no get, even of a key it held.
    @Test func aClosedStoreRefusesGetsOfHeldKeys() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteStore(path: directory.file("capstan.sqlite"))
        try await store.put("k", Data("v".utf8))
        _ = try await store.get("k")
        #expect(store.latest.usage.keys == 1)
        store.close()
        await #expect(throws: StoreError.self) { try await store.get("k") }
    }
}

/// Reader connections held busy by a test until it releases them.
private final class HeldReaders: Sendable {
    let count = Atomic<Int>(0)
    let release = DispatchSemaphore(value: 0)
}
