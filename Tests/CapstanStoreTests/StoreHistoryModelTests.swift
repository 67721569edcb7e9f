import CapstanStore
import CapstanTesting
import Foundation
import Testing

/// Reads at every past revision, checked against a model of the history, through a seeded mix
/// of puts, multi-key transactions, deletes, re-creations and compactions.
@Suite("Store history against a model")
struct StoreHistoryModelTests {
    /// What the store should hold at each revision.
    private struct Model {
        var states: [Int64: [String: KeyValue]] = [:]
        var latest: [String: KeyValue] = [:]
        var revision: Int64 = 0

        mutating func apply(puts: [(String, Data)], deletes: [String], at revision: Int64) {
            for (key, value) in puts {
                let previous = latest[key]
                latest[key] = KeyValue(
                    key: key, value: value, createRevision: previous?.createRevision ?? revision,
                    modRevision: revision, version: (previous?.version ?? 0) + 1)
            }
            for key in deletes { latest[key] = nil }
            self.revision = revision
            states[revision] = latest
        }

        func state(at revision: Int64) -> [String: KeyValue] {
            // Revisions that wrote nothing in range still exist: the state is the last one before.
            var probe = revision
            while probe > 0 {
                if let state = states[probe] { return state }
                probe -= 1
            }
            return [:]
        }
    }

    /// SplitMix64: a fixed seed gives the same run every time.
    private struct Random {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(bound))
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func readsAtEveryRevisionMatchTheModel(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            var model = Model()
            var random = Random(state: 42)
            let keys = (0..<6).map { "m/\($0)" } + ["n/outside"]
            var compacted: Int64 = 0
            let start = try await store.status().revision
            model.states[start] = [:]
            for step in 0..<150 {
                switch random.next(10) {
                case 0..<5:
                    let key = keys[random.next(keys.count)]
                    let value = Data("\(key)#\(step)".utf8)
                    let written = try await store.put(key, value)
                    model.apply(puts: [(key, value)], deletes: [], at: written.modRevision)
                case 5..<7:
                    let first = keys[random.next(keys.count)]
                    let second = keys[(keys.firstIndex(of: first)! + 1 + random.next(keys.count - 1)) % keys.count]
                    let puts = [(first, Data("\(first)#\(step)a".utf8)), (second, Data("\(second)#\(step)b".utf8))]
                    let result = try await store.txn(TxnRequest(success: puts.map { .put(key: $0.0, value: $0.1) }))
                    model.apply(puts: puts, deletes: [], at: result.revision)
                case 7..<9:
                    let key = keys[random.next(keys.count)]
                    let (deleted, revision) = try await store.delete(.key(key))
                    if deleted > 0 { model.apply(puts: [], deletes: [key], at: revision) }
                default:
                    let current = try await store.status().revision
                    if random.next(3) == 0, current > compacted + 1 {
                        compacted += Int64(1 + random.next(Int(current - compacted)))
                        try await store.compact(upTo: compacted)
                    } else {
                        let doomed = model.latest.keys.filter { $0.hasPrefix("m/") }.sorted()
                        let (deleted, revision) = try await store.delete(.prefix("m/"))
                        #expect(deleted == doomed.count)
                        if deleted > 0 { model.apply(puts: [], deletes: doomed, at: revision) }
                    }
                }
            }
            let current = try await store.status().revision
            #expect(current == model.revision)
            for revision in max(compacted, start)...current {
                let expected = model.state(at: revision)
                let inPrefix = expected.values.filter { $0.key.hasPrefix("m/") }.sorted { $0.key < $1.key }
                let at: Int64? = revision == current ? nil : revision
                let all = try await store.range(RangeRequest(.prefix("m/"), revision: at))
                #expect(all.kvs == inPrefix, "prefix at revision \(revision)")
                #expect(all.count == inPrefix.count)
                let limited = try await store.range(RangeRequest(.prefix("m/"), revision: at, limit: 2, descending: true))
                #expect(limited.kvs == Array(inPrefix.reversed().prefix(2)), "descending, limit 2, at revision \(revision)")
                #expect(limited.count == inPrefix.count)
                #expect(limited.more == (inPrefix.count > 2))
                let counted = try await store.range(RangeRequest(.prefix("m/"), revision: at, countOnly: true))
                #expect(counted.count == inPrefix.count)
                let keysOnly = try await store.range(RangeRequest(.interval(from: "m/2", to: "n/z"), revision: at, keysOnly: true))
                let inInterval = expected.values.filter { $0.key >= "m/2" && $0.key < "n/z" }.sorted { $0.key < $1.key }
                #expect(keysOnly.kvs.map(\.key) == inInterval.map(\.key), "interval at revision \(revision)")
                #expect(keysOnly.kvs.allSatisfy { $0.value.isEmpty })
                let single = try await store.range(RangeRequest(.key("n/outside"), revision: at))
                #expect(single.kvs == (expected["n/outside"].map { [$0] } ?? []), "single key at revision \(revision)")
            }
        }
    }
}
