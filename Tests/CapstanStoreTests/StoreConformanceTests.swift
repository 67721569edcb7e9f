import CapstanStore
import CapstanTesting
import Foundation
import Testing

/// The storage contract, run against every engine.
@Suite("Store conformance")
struct StoreConformanceTests {
    private func bytes(_ text: String) -> Data { Data(text.utf8) }
    private func text(_ data: Data) -> String { String(decoding: data, as: UTF8.self) }

    @Test(arguments: StoreEngine.allCases)
    func putBumpsRevisionAndKeyCounters(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let start = try await store.status().revision
            let first = try await store.put("a", bytes("1"))
            #expect(first.modRevision == start + 1)
            #expect(first.createRevision == start + 1)
            #expect(first.version == 1)
            let second = try await store.put("a", bytes("2"))
            #expect(second.modRevision == start + 2)
            #expect(second.createRevision == start + 1)
            #expect(second.version == 2)
            let read = try #require(try await store.get("a"))
            #expect(read == second)
            #expect(try await store.status().revision == start + 2)
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func rangeByPrefixIsOrderedAndLimited(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            for key in ["p/c", "p/a", "q/a", "p/b", "o/z"] {
                try await store.put(key, bytes(key))
            }
            let all = try await store.range(RangeRequest(.prefix("p/")))
            #expect(all.kvs.map(\.key) == ["p/a", "p/b", "p/c"])
            #expect(all.count == 3)
            #expect(all.more == false)
            let limited = try await store.range(RangeRequest(.prefix("p/"), limit: 2))
            #expect(limited.kvs.map(\.key) == ["p/a", "p/b"])
            #expect(limited.count == 3)
            #expect(limited.more)
            let keysOnly = try await store.range(RangeRequest(.prefix("p/"), keysOnly: true))
            #expect(keysOnly.kvs.allSatisfy { $0.value.isEmpty })
            let counted = try await store.range(RangeRequest(.prefix(""), countOnly: true))
            #expect(counted.count == 5)
            #expect(counted.kvs.isEmpty)
            let interval = try await store.range(RangeRequest(.interval(from: "p/b", to: "q/a")))
            #expect(interval.kvs.map(\.key) == ["p/b", "p/c"])
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func rangeAtAnOlderRevisionSeesThePast(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let v1 = try await store.put("k", bytes("one"))
            try await store.put("k", bytes("two"))
            try await store.put("other", bytes("x"))
            let (_, deletedAt) = try await store.delete(.key("k"))
            let past = try await store.range(RangeRequest(.prefix(""), revision: v1.modRevision))
            #expect(past.kvs.map(\.key) == ["k"])
            #expect(text(past.kvs[0].value) == "one")
            #expect(past.kvs[0].version == 1)
            let beforeDelete = try await store.range(RangeRequest(.key("k"), revision: deletedAt - 1))
            #expect(beforeDelete.kvs.map { text($0.value) } == ["two"])
            #expect(try await store.range(RangeRequest(.key("k"), revision: deletedAt)).kvs.isEmpty)
            await #expect(throws: StoreError.self) {
                _ = try await store.range(RangeRequest(.key("k"), revision: deletedAt + 100))
            }
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func deleteOfNothingLeavesTheRevision(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            try await store.put("a/1", bytes("x"))
            try await store.put("a/2", bytes("x"))
            let before = try await store.status().revision
            let none = try await store.delete(.key("missing"))
            #expect(none.deleted == 0)
            #expect(try await store.status().revision == before)
            let both = try await store.delete(.prefix("a/"))
            #expect(both.deleted == 2)
            #expect(both.revision == before + 1)
            #expect(try await store.range(RangeRequest(.prefix("a/"))).kvs.isEmpty)
            let recreated = try await store.put("a/1", bytes("y"))
            #expect(recreated.version == 1)
            #expect(recreated.createRevision == recreated.modRevision)
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func compareAndSwapTakesTheRightBranch(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let created = try await store.txn(
                TxnRequest(compares: [.absent("lock")], success: [.put(key: "lock", value: bytes("me"))]))
            #expect(created.succeeded)
            let again = try await store.txn(
                TxnRequest(
                    compares: [.absent("lock")],
                    success: [.put(key: "lock", value: bytes("other"))],
                    failure: [.range(RangeRequest(.key("lock")))]))
            #expect(!again.succeeded)
            #expect(again.revision == created.revision, "a failed compare with only reads must not bump the revision")
            guard case .range(let held) = again.results.first else {
                Issue.record("failure branch did not run its range")
                return
            }
            #expect(held.kvs.map { text($0.value) } == ["me"])
            let wrongRevision = try await store.txn(
                TxnRequest(
                    compares: [Compare(key: "lock", .modRevision(created.revision - 1))],
                    success: [.delete(.key("lock"))]))
            #expect(!wrongRevision.succeeded)
            let valueMatch = try await store.txn(
                TxnRequest(compares: [Compare(key: "lock", .value(bytes("me")))], success: [.delete(.key("lock"))]))
            #expect(valueMatch.succeeded)
            #expect(try await store.get("lock") == nil)
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func concurrentCompareAndSwapLosesNoIncrement(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            try await store.put("counter", bytes("0"))
            let workers = 8
            let increments = 25
            let conflicts = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<workers {
                    group.addTask {
                        var conflicts = 0
                        for _ in 0..<increments {
                            while true {
                                let current = try #require(try await store.get("counter"))
                                let next = Int(String(decoding: current.value, as: UTF8.self))! + 1
                                let result = try await store.txn(
                                    TxnRequest(
                                        compares: [Compare(key: "counter", .modRevision(current.modRevision))],
                                        success: [.put(key: "counter", value: Data(String(next).utf8))]))
                                if result.succeeded { break }
                                conflicts += 1
                            }
                        }
                        return conflicts
                    }
                }
                return try await group.reduce(0, +)
            }
            let final = try #require(try await store.get("counter"))
            #expect(text(final.value) == String(workers * increments))
            #expect(final.version == Int64(workers * increments + 1))
            #expect(conflicts >= 0)
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func refusedTransactionsChangeNothing(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            try await store.put("x", bytes("1"))
            let before = try await store.status().revision
            await #expect(throws: StoreError.self) {
                _ = try await store.txn(
                    TxnRequest(success: [.put(key: "y", value: bytes("1")), .put(key: "y", value: bytes("2"))]))
            }
            await #expect(throws: StoreError.self) {
                _ = try await store.put("z", bytes("1"), lease: 424_242)
            }
            await #expect(throws: StoreError.self) {
                _ = try await store.txn(TxnRequest(success: [.delete(.prefix("")), .put(key: "x", value: bytes("2"))]))
            }
            // Fails half-way, after its put: nothing of it may remain.
            await #expect(throws: StoreError.self) {
                _ = try await store.txn(
                    TxnRequest(success: [
                        .put(key: "half", value: bytes("1")), .range(RangeRequest(.key("half"), revision: before + 1000)),
                    ]))
            }
            #expect(try await store.status().revision == before)
            #expect(try await store.get("y") == nil)
            #expect(try await store.get("z") == nil)
            #expect(try await store.get("half") == nil)
            #expect(try await store.get("x")?.value == bytes("1"))
            let next = try await store.put("after", bytes("1"))
            #expect(next.modRevision == before + 1, "the store keeps working after refused transactions")
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func watchIsOrderedAndGapFreeUnderConcurrentWriters(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let start = try await store.status().revision
            let writers = 8
            let perWriter = 40
            let total = writers * perWriter
            let iterator = store.watch(.prefix("w/"), fromRevision: start + 1)
            let collector = Task {
                var events: [WatchEvent] = []
                for try await batch in iterator {
                    events += batch
                    if events.count >= total { break }
                }
                return events
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        for index in 0..<perWriter {
                            try await store.put("w/\(writer)", Data("\(index)".utf8))
                        }
                    }
                }
                try await group.waitForAll()
            }
            let events = try await withTimeout(.seconds(20), "watch events") { try await collector.value }
            #expect(events.count == total)
            #expect(events.map(\.revision) == Array((start + 1)...(start + Int64(total))))
            for writer in 0..<writers {
                let mine = events.filter { $0.kv.key == "w/\(writer)" }
                #expect(mine.map { text($0.kv.value) } == (0..<perWriter).map(String.init))
                #expect(mine.map(\.kv.version) == (1...Int64(perWriter)).map { $0 })
            }
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func watchFromAnOldRevisionReplaysThenFollows(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let first = try await store.put("r/a", bytes("1"))
            try await store.put("elsewhere", bytes("x"))
            try await store.put("r/b", bytes("2"))
            try await store.delete(.key("r/a"))
            var iterator = store.watch(.prefix("r/"), fromRevision: first.modRevision).makeAsyncIterator()
            var seen: [WatchEvent] = []
            while seen.count < 3, let batch = try await iterator.next() { seen += batch }
            #expect(seen.map(\.kind) == [.put, .put, .delete])
            #expect(seen.map(\.kv.key) == ["r/a", "r/b", "r/a"])
            let live = try await store.put("r/c", bytes("3"))
            let next = try #require(try await iterator.next())
            #expect(next.map(\.revision) == [live.modRevision])
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func transactionEventsShareOneRevision(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let start = try await store.status().revision
            var iterator = store.watch(.prefix("t/"), fromRevision: start + 1).makeAsyncIterator()
            let result = try await store.txn(
                TxnRequest(success: [.put(key: "t/1", value: bytes("a")), .put(key: "t/2", value: bytes("b"))]))
            var events: [WatchEvent] = []
            while events.count < 2, let batch = try await iterator.next() { events += batch }
            #expect(events.map(\.revision) == [result.revision, result.revision])
            #expect(events.map(\.kv.key) == ["t/1", "t/2"])
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func compactionRefusesOlderReadsAndWatches(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let first = try await store.put("c", bytes("1"))
            let second = try await store.put("c", bytes("2"))
            try await store.put("c", bytes("3"))
            try await store.compact(upTo: second.modRevision)
            #expect(try await store.status().compactRevision == second.modRevision)
            let atCompaction = try await store.range(RangeRequest(.key("c"), revision: second.modRevision))
            #expect(atCompaction.kvs.map { text($0.value) } == ["2"])
            do {
                _ = try await store.range(RangeRequest(.key("c"), revision: first.modRevision))
                Issue.record("read below the compaction point succeeded")
            } catch let error as StoreError {
                #expect(error.code == .compacted)
                #expect(error.compactRevision == second.modRevision)
            }
            do {
                for try await _ in store.watch(.key("c"), fromRevision: first.modRevision) { break }
                Issue.record("watch below the compaction point delivered events")
            } catch let error as StoreError {
                #expect(error.code == .compacted)
            }
            var fromCompaction = store.watch(.key("c"), fromRevision: second.modRevision).makeAsyncIterator()
            let replay = try #require(try await fromCompaction.next())
            #expect(replay.first?.revision == second.modRevision)
            await #expect(throws: StoreError.self) { try await store.compact(upTo: second.modRevision) }
            await #expect(throws: StoreError.self) { try await store.compact(upTo: second.modRevision + 1000) }
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func revokedLeaseDeletesItsKeys(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let lease = try await store.grantLease(ttl: 60)
            #expect(lease.ttl == 60)
            let held = try await store.put("l/held", bytes("x"), lease: lease.id)
            #expect(held.lease == lease.id)
            try await store.put("l/free", bytes("y"))
            #expect(try await store.keepAlive(lease.id) == 60)
            var watch = store.watch(.prefix("l/"), fromRevision: held.modRevision + 2).makeAsyncIterator()
            try await store.revokeLease(lease.id)
            let events = try #require(try await watch.next())
            #expect(events.map(\.kind) == [.delete])
            #expect(events.map(\.kv.key) == ["l/held"])
            #expect(try await store.get("l/held") == nil)
            #expect(try await store.get("l/free") != nil)
            await #expect(throws: StoreError.self) { _ = try await store.keepAlive(lease.id) }
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func expiredLeaseDeletesItsKeys(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            // On a loaded machine a short lease may lapse before the put lands: grant again then.
            var attached: (Lease, KeyValue)?
            for _ in 0..<5 where attached == nil {
                let lease = try await store.grantLease(ttl: 2)
                do {
                    attached = (lease, try await store.put("e/held", bytes("x"), lease: lease.id))
                } catch let error as StoreError where error.code == .leaseNotFound {
                    continue
                }
            }
            let (lease, held) = try #require(attached)
            // Read first, so an engine that answers gets from memory holds the key when it expires
            // (on a loaded machine it may have expired already).
            let before = try await store.get("e/held")
            #expect(before == held || before == nil)
            let deletion = try await withTimeout(.seconds(10), "lease expiry") {
                for try await batch in store.watch(.key("e/held"), fromRevision: held.modRevision + 1) {
                    if let event = batch.first { return event }
                }
                throw TimeoutError(what: "watch ended", timeout: .zero)
            }
            #expect(deletion.kind == .delete)
            #expect(try await store.get("e/held") == nil)
            do {
                _ = try await store.keepAlive(lease.id)
                Issue.record("keep-alive of an expired lease succeeded")
            } catch let error as StoreError {
                #expect(error.code == .leaseNotFound)
            }
        }
    }
}
