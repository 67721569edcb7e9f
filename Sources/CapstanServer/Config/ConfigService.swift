import CapstanCore
import CapstanStore
import Foundation
import Synchronization

/// Namespaces and config keys with history, on the storage contract.
public final class ConfigService: Sendable {
    let store: any KeyValueStore
    public let configuration: ConfigServiceConfiguration
    private let keyLock = KeyedLock()
    /// What this process last knew of the keys it wrote, to skip the read before a write.
    let writeStates = WriteStates()
    /// Decoded namespace states by namespace, valid while the record's revision is unchanged.
    private let namespaceStates = Mutex<[String: (revision: Int64, deleting: Bool)]>([:])

    /// A write races another writer at most this many times before giving up.
    private static let maxAttempts = 16

    public init(store: any KeyValueStore, configuration: ConfigServiceConfiguration = .init()) {
        self.store = store
        self.configuration = configuration
    }

    /// A config version with its content.
    public struct Entry: Sendable {
        public var info: ConfigVersionInfo
        public var content: Data
    }

    // MARK: Reads

    /// The current content of `key`, or its content as of store revision `revision`.
    public func get(_ key: ConfigKey, revision: Int64? = nil) async throws -> Entry {
        if let revision {
            return try await versionAt(key, revision: revision)
        }
        guard let kv = try await store.get(StoreLayout.config(key)) else {
            throw try await notFound(key)
        }
        let record = try ConfigRecord.decode(kv.value)
        return Entry(info: record.info(key: key.description, revision: kv.modRevision), content: record.content)
    }

    /// Current versions of the keys under `prefix`, in key order.
    public func list(_ prefix: KeyPrefix, limit: Int? = nil) async throws -> ConfigList {
        let result = try await store.range(RangeRequest(.prefix(StoreLayout.configPrefix(prefix)), limit: limit))
        let items = try result.kvs.map { kv in
            try ConfigRecord.decode(kv.value).info(key: StoreLayout.configKey(fromStoreKey: kv.key), revision: kv.modRevision)
        }
        return ConfigList(revision: result.revision, items: items)
    }

    /// Retained versions of `key`, newest first, deletes included.
    public func history(_ key: ConfigKey, limit: Int? = nil) async throws -> ConfigHistory {
        let entries = try await historyEntries(key, limit: limit)
        if entries.isEmpty {
            throw try await notFound(key)
        }
        return ConfigHistory(key: key.description, items: entries.map(\.info))
    }

    /// Unified diff between the content at revision `from` and at `to` (default: current).
    public func diff(_ key: ConfigKey, from: Int64, to: Int64? = nil) async throws -> String {
        let old = try await versionAt(key, revision: from)
        let new: Entry
        if let to {
            new = try await versionAt(key, revision: to)
        } else {
            new = try await get(key)
        }
        return UnifiedDiff.make(
            old: String(decoding: old.content, as: UTF8.self),
            new: String(decoding: new.content, as: UTF8.self),
            oldLabel: "\(key)@\(old.info.revision)",
            newLabel: "\(key)@\(new.info.revision)")
    }

    /// The error for a key that is not there: names the namespace when that is what is missing.
    func notFound(_ key: ConfigKey) async throws -> CapstanError {
        if try await store.get(StoreLayout.namespace(key.namespace)) == nil {
            return CapstanError(.namespaceNotFound, "namespace \(key.namespace) not found")
        }
        return CapstanError(.configNotFound, "config \(key) not found")
    }

    /// The version of `key` that was current at store revision `revision`.
    func versionAt(_ key: ConfigKey, revision: Int64) async throws -> Entry {
        let current = try await store.status().revision
        if revision > current {
            throw CapstanError(.futureRevision, "revision \(revision) is newer than the current revision \(current)")
        }
        // Find the entry by keys alone, then read just that one record.
        let index = try await store.range(
            RangeRequest(.prefix(StoreLayout.historyPrefix(key)), keysOnly: true, descending: true))
        guard let oldest = index.kvs.last else {
            throw try await notFound(key)
        }
        guard revision >= oldest.modRevision else {
            throw CapstanError(
                .revisionNotFound,
                "config \(key) has no retained version at revision \(revision); the oldest kept is \(oldest.modRevision)")
        }
        guard let position = index.kvs.firstIndex(where: { $0.modRevision <= revision }),
            let kv = try await store.get(index.kvs[position].key)
        else {
            throw CapstanError(.revisionNotFound, "config \(key) has no version at revision \(revision)")
        }
        // Pruning leaves a gap after the first version: a revision past that version's own may fall
        // on a version that is no longer retained.
        if position > 0, revision > kv.modRevision,
            Self.sequence(of: index.kvs[position - 1].key) != Self.sequence(of: kv.key) + 1
        {
            throw CapstanError(
                .revisionNotFound,
                "config \(key) has no retained version at revision \(revision); the oldest kept after the first is \(index.kvs[position - 1].modRevision)")
        }
        let record = try ConfigRecord.decode(kv.value)
        guard record.header.action == .put else {
            throw CapstanError(.revisionNotFound, "config \(key) was deleted at revision \(kv.modRevision)")
        }
        return Entry(info: record.info(key: key.description, revision: kv.modRevision), content: record.content)
    }

    static func sequence(of historyKey: String) -> Int64 { Int64(historyKey.suffix(20)) ?? 0 }

    /// History entries, newest first.
    func historyEntries(_ key: ConfigKey, limit: Int?) async throws -> [Entry] {
        let result = try await store.range(
            RangeRequest(.prefix(StoreLayout.historyPrefix(key)), limit: limit, descending: true))
        return try result.kvs.map { kv in
            let record = try ConfigRecord.decode(kv.value)
            return Entry(info: record.info(key: key.description, revision: kv.modRevision), content: record.content)
        }
    }

    // MARK: Writes

    /// Writes a new version of `key`.
    ///
    /// - Parameters:
    ///   - format: the declared format; nil infers it from the key's extension.
    ///   - ifRevision: write only if the key's current revision is this (0: only if absent).
    /// - Throws: `invalid_content` with line and column when the content does not parse,
    ///   `precondition_failed` when `ifRevision` does not match.
    @discardableResult
    public func put(
        _ key: ConfigKey,
        content: Data,
        format: ConfigFormat? = nil,
        comment: String = "",
        author: String,
        ifRevision: Int64? = nil
    ) async throws -> ConfigVersionInfo {
        let format = format ?? ConfigFormat.infer(fromPath: key.path)
        try validate(content, format: format, key: key)
        return try await write(key, author: author, ifRevision: ifRevision) { sequence in
            ConfigRecord(
                sequence: sequence, action: .put, format: format, content: content,
                author: author, comment: comment, time: Date())
        }
    }

    /// Deletes `key`; its history stays (a delete is a version of its own) until the namespace goes.
    @discardableResult
    public func delete(_ key: ConfigKey, author: String, ifRevision: Int64? = nil) async throws -> ConfigVersionInfo {
        try await write(key, author: author, ifRevision: ifRevision, deleting: true) { sequence in
            ConfigRecord(
                sequence: sequence, action: .delete, format: .text, content: Data(),
                author: author, comment: "", time: Date())
        }
    }

    /// Writes the content `key` had at revision `to` (default: the version before the current one)
    /// as a new version.
    @discardableResult
    public func rollback(_ key: ConfigKey, to revision: Int64? = nil, author: String, comment: String = "", ifRevision: Int64? = nil)
        async throws -> ConfigVersionInfo
    {
        let target: Entry
        if let revision {
            target = try await versionAt(key, revision: revision)
        } else {
            let entries = try await historyEntries(key, limit: nil)
            if entries.isEmpty { throw try await notFound(key) }
            guard entries.count >= 2, let previous = entries.dropFirst().first(where: { $0.info.action == .put }) else {
                throw CapstanError(.revisionNotFound, "config \(key) has no earlier version to roll back to")
            }
            target = previous
        }
        let note = "rollback to revision \(target.info.revision)" + (comment.isEmpty ? "" : ": \(comment)")
        return try await put(
            key, content: target.content, format: target.info.format, comment: note, author: author, ifRevision: ifRevision)
    }

    func validate(_ content: Data, format: ConfigFormat, key: ConfigKey) throws {
        if content.count > configuration.maxContentSize {
            throw CapstanError(
                .payloadTooLarge,
                "config \(key) is \(ByteSize.format(content.count)); the limit is \(ByteSize.format(configuration.maxContentSize))")
        }
        guard let text = String(validating: content, as: UTF8.self) else {
            throw CapstanError(.invalidEncoding, "config \(key) is not valid UTF-8 text")
        }
        _ = try format.parse(text)
    }

    /// One optimistic write: read the namespace and the key, then commit both records in one
    /// transaction that fails if either changed meanwhile; retry on a lost race unless the caller
    /// pinned a revision.
    private func write(
        _ key: ConfigKey,
        author: String,
        ifRevision: Int64?,
        deleting: Bool = false,
        makeRecord: @Sendable (Int64) throws -> ConfigRecord
    ) async throws -> ConfigVersionInfo {
        try await keyLock.withLock(key.description) {
            try await writeOnce(key, ifRevision: ifRevision, deleting: deleting, makeRecord: makeRecord)
        }
    }

    private func writeOnce(
        _ key: ConfigKey,
        ifRevision: Int64?,
        deleting: Bool,
        makeRecord: @Sendable (Int64) throws -> ConfigRecord
    ) async throws -> ConfigVersionInfo {
        let storeKey = StoreLayout.config(key)
        // First try what this process last knew (no read); a compare that fails sends every later
        // attempt through a fresh read.
        var guess = writeStates.guess(key, namespace: key.namespace, deleting: deleting)
        for attempt in 0..<Self.maxAttempts {
            if attempt > 1 {
                // Another replica won the race: back off a little, with jitter, and re-read.
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...min(50, 1 << attempt))))
            }
            let state: WriteStates.State
            if let known = guess {
                state = known
                guess = nil
            } else {
                state = try await readState(key)
                if let ifRevision, state.currentRevision != ifRevision {
                    throw CapstanError(
                        .preconditionFailed, "config \(key) is at revision \(state.currentRevision), not \(ifRevision)")
                }
                if deleting, state.currentRevision == 0 {
                    throw CapstanError(.configNotFound, "config \(key) not found")
                }
            }
            let sequence = state.lastSequence + 1
            let record = try makeRecord(sequence)
            let encoded = try record.encoded()
            let historyKey = StoreLayout.history(key, sequence: sequence)
            var ops: [TxnOp] = [
                deleting ? .delete(.key(storeKey)) : .put(key: storeKey, value: encoded),
                .put(key: historyKey, value: encoded),
            ]
            // Keep the newest versions and the very first one: entry 1 marks that the key has a
            // history, which is what makes guessing a new key's sequence safe (see WriteStates).
            let pruneBelow = sequence - Int64(configuration.historyRetention) + 1
            if pruneBelow > 2 {
                ops.append(
                    .delete(.interval(from: StoreLayout.history(key, sequence: 2), to: StoreLayout.history(key, sequence: pruneBelow))))
            }
            let result = try await store.txn(
                TxnRequest(
                    compares: [
                        Compare(key: StoreLayout.namespace(key.namespace), .modRevision(state.namespaceRevision)),
                        Compare(key: storeKey, .modRevision(ifRevision ?? state.currentRevision)),
                        // The sequence is free: guards a guessed one against history written elsewhere.
                        .absent(historyKey),
                    ],
                    success: ops))
            if result.succeeded {
                writeStates.record(
                    key, namespace: key.namespace, namespaceRevision: state.namespaceRevision,
                    currentRevision: deleting ? 0 : result.revision, sequence: sequence)
                return record.info(key: key.description, revision: result.revision)
            }
            writeStates.forget(key, namespace: key.namespace)
        }
        throw CapstanError(.conflict, "config \(key) is changing too fast; gave up after \(Self.maxAttempts) attempts")
    }

    /// One consistent read of everything a write of `key` depends on.
    private func readState(_ key: ConfigKey) async throws -> WriteStates.State {
        let read = try await store.txn(
            TxnRequest(success: [
                .range(RangeRequest(.key(StoreLayout.namespace(key.namespace)))),
                .range(RangeRequest(.key(StoreLayout.config(key)), keysOnly: true)),
                .range(RangeRequest(.prefix(StoreLayout.historyPrefix(key)), limit: 1, keysOnly: true, descending: true)),
            ]))
        guard read.results.count == 3, case .range(let namespaceRange) = read.results[0],
            case .range(let currentRange) = read.results[1], case .range(let latestHistory) = read.results[2]
        else {
            throw CapstanError(.internal, "store answered a read transaction without its results")
        }
        let namespace = try activeNamespace(namespaceRange.kvs.first, name: key.namespace)
        return WriteStates.State(
            namespaceRevision: namespace.modRevision,
            currentRevision: currentRange.kvs.first?.modRevision ?? 0,
            lastSequence: latestHistory.kvs.first.map { Self.sequence(of: $0.key) } ?? 0)
    }

    func activeNamespace(_ kv: KeyValue?, name: String) throws -> KeyValue {
        guard let kv else {
            throw CapstanError(.namespaceNotFound, "namespace \(name) not found: create it with `capstan ns create \(name)`")
        }
        let cached = namespaceStates.withLock { $0[name] }
        let deleting: Bool
        if let cached, cached.revision == kv.modRevision {
            deleting = cached.deleting
        } else {
            deleting = try NamespaceRecord.decode(kv.value).state == .deleting
            namespaceStates.withLock { $0[name] = (kv.modRevision, deleting) }
        }
        if deleting {
            throw CapstanError(.conflict, "namespace \(name) is being deleted")
        }
        return kv
    }
}
