import CapstanStore
import CapstanTesting
import Foundation
import Synchronization
import Testing

/// A get sees every write acknowledged before it, whatever wrote it: the SQLite engine answers
/// gets of keys it read recently from memory, which every commit must keep exact.
@Suite("Store gets after writes")
struct StoreGetAfterWriteTests {
    private func bytes(_ text: String) -> Data { Data(text.utf8) }

    /// Reads `key` twice (the first read may fill the engine's memory, the second answer from it)
    /// and checks both against `expected`.
    private func expectGet(_ store: any KeyValueStore, _ key: String, _ expected: KeyValue?, sourceLocation: SourceLocation = #_sourceLocation)
        async throws
    {
        for _ in 0..<2 {
            #expect(try await store.get(key) == expected, sourceLocation: sourceLocation)
        }
    }

    private func firstPut(_ result: TxnResult) throws -> KeyValue {
        guard case .put(let kv) = result.results.first else { throw StoreError(.io, "the transaction answered no put first") }
        return kv
    }

    @Test(arguments: StoreEngine.allCases)
    func everyKindOfWriteIsSeenByTheNextGet(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let key = "rw/k"
            try await expectGet(store, key, nil)
            let first = try await store.put(key, bytes("1"))
            try await expectGet(store, key, first)
            let second = try await store.put(key, bytes("2"))
            try await expectGet(store, key, second)

            // A transaction's success branch, then its failure branch.
            let swapped = try await store.txn(
                TxnRequest(
                    compares: [Compare(key: key, .modRevision(second.modRevision))],
                    success: [.put(key: key, value: bytes("3")), .put(key: "rw/other", value: bytes("o"))]))
            #expect(swapped.succeeded)
            let third = try firstPut(swapped)
            try await expectGet(store, key, third)
            let refused = try await store.txn(
                TxnRequest(
                    compares: [Compare(key: key, .modRevision(second.modRevision))],
                    success: [.put(key: key, value: bytes("never"))], failure: [.put(key: key, value: bytes("4"))]))
            #expect(!refused.succeeded)
            let fourth = try firstPut(refused)
            #expect(fourth.version == 4)
            try await expectGet(store, key, fourth)

            // Keys only: the same row without its value.
            let keysOnly = try await store.range(RangeRequest(.key(key), keysOnly: true))
            #expect(keysOnly.kvs.map(\.value) == [Data()])
            #expect(keysOnly.kvs.map(\.modRevision) == [fourth.modRevision])

            // A delete by prefix, then the key made again: a new life, version 1.
            let (deleted, _) = try await store.delete(.prefix("rw/"))
            #expect(deleted == 2)
            try await expectGet(store, key, nil)
            try await expectGet(store, "rw/other", nil)
            let lease = try await store.grantLease(ttl: 600)
            let leased = try await store.put(key, bytes("5"), lease: lease.id)
            #expect(leased.version == 1 && leased.createRevision == leased.modRevision)
            try await expectGet(store, key, leased)
            try await store.revokeLease(lease.id)
            try await expectGet(store, key, nil)

            // Compaction leaves the current row as it is; an older revision is still read as it was.
            let fifth = try await store.put(key, bytes("6"))
            try await expectGet(store, key, fifth)
            let sixth = try await store.put(key, bytes("7"))
            try await store.compact(upTo: fifth.modRevision)
            try await expectGet(store, key, sixth)
            let old = try await store.range(RangeRequest(.key(key), revision: fifth.modRevision))
            #expect(old.kvs == [fifth])
            #expect(try await store.range(RangeRequest(.key(key))).revision >= sixth.modRevision)
        }
    }

    /// Readers loop on a key while a writer puts 1, 2, 3…: each get answers at least the number
    /// last acknowledged before it began, and no reader ever sees the numbers go back.
    @Test(arguments: StoreEngine.allCases)
    func getsRacingPutsSeeEveryAcknowledgedPut(engine: StoreEngine) async throws {
        let puts = 100
        let acknowledged = Counter()
        try await engine.withStore { store in
            try await store.put("race/k", Data("0".utf8))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // Readers stop when this ends, however it ends.
                    defer { acknowledged.finished.store(true, ordering: .sequentiallyConsistent) }
                    for number in 1...puts {
                        try await store.put("race/k", Data("\(number)".utf8))
                        acknowledged.value.store(number, ordering: .sequentiallyConsistent)
                    }
                }
                for _ in 0..<3 {
                    group.addTask {
                        var last = 0
                        while true {
                            let floor = acknowledged.value.load(ordering: .sequentiallyConsistent)
                            let kv = try #require(try await store.get("race/k"))
                            let number = try #require(Int(String(decoding: kv.value, as: UTF8.self)))
                            #expect(number >= floor, "a get after put \(floor) was acknowledged answered \(number)")
                            #expect(number >= last, "a reader saw \(last), then \(number)")
                            #expect(kv.version == Int64(number) + 1)
                            last = number
                            // A get answered from memory does not suspend: let the writer's task run.
                            await Task.yield()
                            if acknowledged.finished.load(ordering: .sequentiallyConsistent) { return }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }
}

private final class Counter: Sendable {
    let value = Atomic<Int>(0)
    let finished = Atomic<Bool>(false)
}
