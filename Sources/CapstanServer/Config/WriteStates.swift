import CapstanCore
import Synchronization

/// What this process last knew of namespaces and keys it wrote: lets a config write skip its
/// read and commit straight away.
///
/// Only a guess: the write's transaction compares the namespace's and the key's revision and that
/// the history sequence is free, so a stale entry (another replica wrote, a restart) costs one
/// failed compare and a read, never a wrong write. A key this process never saw is guessed new
/// (no current version, no history), which is what creating a key looks like; the write then
/// compares that history entry 1 is absent, and since pruning always keeps entry 1, that holds
/// exactly when the key never had a history.
final class WriteStates: Sendable {
    struct State: Sendable {
        var namespaceRevision: Int64
        /// Revision of the key's current version; 0 when absent.
        var currentRevision: Int64
        /// Sequence of the newest history entry; 0 when none.
        var lastSequence: Int64
        /// Whether the current version is a secret.
        var currentIsSecret = false
    }

    private struct Known {
        var namespaces: [String: Int64] = [:]
        var keys: [ConfigKey: (currentRevision: Int64, lastSequence: Int64, secret: Bool)] = [:]
    }

    /// Bounds memory: past this many keys the table starts afresh.
    private let capacity: Int
    private let known = Mutex(Known())

    init(capacity: Int = 100_000) {
        self.capacity = capacity
    }

    /// The state to try first, or nil when a read is needed (unknown namespace, or a delete of a
    /// key not known to exist).
    func guess(_ key: ConfigKey, namespace: String, deleting: Bool) -> State? {
        known.withLock { known in
            guard let namespaceRevision = known.namespaces[namespace] else { return nil }
            let entry = known.keys[key] ?? (0, 0, false)
            if deleting, entry.currentRevision == 0 { return nil }
            return State(
                namespaceRevision: namespaceRevision, currentRevision: entry.currentRevision, lastSequence: entry.lastSequence,
                currentIsSecret: entry.secret)
        }
    }

    func record(_ key: ConfigKey, namespace: String, namespaceRevision: Int64, currentRevision: Int64, sequence: Int64, secret: Bool) {
        known.withLock { known in
            if known.keys.count >= capacity { known.keys.removeAll(keepingCapacity: true) }
            known.namespaces[namespace] = namespaceRevision
            known.keys[key] = (currentRevision, sequence, secret)
        }
    }

    func forget(_ key: ConfigKey, namespace: String) {
        known.withLock { known in
            known.keys[key] = nil
            known.namespaces[namespace] = nil
        }
    }
}
