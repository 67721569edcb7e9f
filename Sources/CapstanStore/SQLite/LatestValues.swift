import Synchronization

/// The current rows of recently read keys, kept in step with the store's commits: a get at the
/// latest revision is answered from memory, with no reader connection, no SQL and no thread hop.
///
/// Exact, not a hint. The writer applies every committed batch (its watch events: each put with
/// its row, each delete) before any write of the batch is acknowledged, so a get after an
/// acknowledged write sees it. A read from SQLite fills an entry only if no batch was applied since
/// the snapshot it read (same revision), so a row read just before a commit cannot overwrite what
/// that commit wrote. Writes update held keys but add none: the memory holds what readers ask for.
///
/// Bounded by `budget` bytes of keys and values (plus a fixed allowance per entry); past it, a
/// held key chosen at random makes room. A row larger than a sixteenth of the budget is not held.
final class LatestValues: Sendable {
    private struct Entry {
        var kv: KeyValue
        /// Position in `State.keys`, for removal in constant time.
        var slot: Int
    }

    private struct State {
        /// The revision of the last batch applied; -1 once closed (nothing is held or filled).
        var revision: Int64
        var entries: [String: Entry] = [:]
        /// The held keys, for eviction at random.
        var keys: [String] = []
        var bytes = 0
        var hits = 0
        var random = SystemRandomNumberGenerator()
    }

    /// Bookkeeping per entry beyond its key and value bytes: the dictionary slot, the row's
    /// integers, the key array's slot and the strings' and data's headers, rounded up.
    static let entryOverhead = 128

    let budget: Int
    private let state: Mutex<State>

    /// - Parameters:
    ///   - revision: the store's current revision at opening.
    ///   - budget: bytes to hold at most; 0 holds nothing.
    init(revision: Int64, budget: Int) {
        self.budget = max(0, budget)
        self.state = Mutex(State(revision: revision))
    }

    /// The key's current row and the revision it is current at; nil when the key is not held.
    func lookup(_ key: String) -> (kv: KeyValue, revision: Int64)? {
        state.withLock { state in
            guard let entry = state.entries[key] else { return nil }
            state.hits += 1
            return (entry.kv, state.revision)
        }
    }

    /// Holds `kv`, read in a snapshot at `revision`, if that is still the latest revision applied.
    func fill(_ kv: KeyValue, readAt revision: Int64) {
        let size = Self.size(of: kv)
        guard size <= budget / 16 else { return }
        state.withLock { state in
            guard state.revision == revision, state.entries[kv.key] == nil else { return }
            state.entries[kv.key] = Entry(kv: kv, slot: state.keys.count)
            state.keys.append(kv.key)
            state.bytes += size
            makeRoom(&state, keeping: kv.key)
        }
    }

    /// Applies a committed batch: held keys take their new row or leave; `revision` becomes the
    /// latest applied. Called by the writer only, in commit order.
    func apply(_ events: [WatchEvent], revision: Int64) {
        state.withLock { state in
            guard state.revision >= 0 else { return }
            for event in events {
                guard let held = state.entries[event.kv.key] else { continue }
                if event.kind == .put, Self.size(of: event.kv) <= budget / 16 {
                    state.bytes += Self.size(of: event.kv) - Self.size(of: held.kv)
                    state.entries[event.kv.key]?.kv = event.kv
                } else {
                    remove(event.kv.key, from: &state)
                }
            }
            state.revision = revision
            makeRoom(&state, keeping: nil)
        }
    }

    /// Drops everything and holds nothing more: the store is closing.
    func close() {
        state.withLock { state in
            state.revision = -1
            state.entries = [:]
            state.keys = []
            state.bytes = 0
        }
    }

    /// How many keys are held, their bytes as counted against the budget, and the gets answered.
    var usage: (keys: Int, bytes: Int, hits: Int) {
        state.withLock { ($0.entries.count, $0.bytes, $0.hits) }
    }

    private static func size(of kv: KeyValue) -> Int {
        kv.key.utf8.count + kv.value.count + entryOverhead
    }

    private func makeRoom(_ state: inout State, keeping kept: String?) {
        while state.bytes > budget, !state.keys.isEmpty {
            let victim = state.keys[Int.random(in: 0..<state.keys.count, using: &state.random)]
            if victim == kept, state.keys.count == 1 { return }
            if victim != kept { remove(victim, from: &state) }
        }
    }

    private func remove(_ key: String, from state: inout State) {
        guard let entry = state.entries.removeValue(forKey: key) else { return }
        state.bytes -= Self.size(of: entry.kv)
        let last = state.keys.removeLast()
        if entry.slot < state.keys.count {
            state.keys[entry.slot] = last
            state.entries[last]?.slot = entry.slot
        }
    }
}
