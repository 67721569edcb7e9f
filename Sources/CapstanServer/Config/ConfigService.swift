import CapstanCore
import CapstanStore
import Foundation
import Synchronization

/// Namespaces and config keys with history, on the storage contract.
public final class ConfigService: Sendable {
    let store: any KeyValueStore
    public let configuration: ConfigServiceConfiguration
    let keyLock = KeyedLock()
    /// What this process last knew of the keys it wrote, to skip the read before a write.
    let writeStates = WriteStates()
    /// Decoded namespace states by namespace, valid while the record's revision is unchanged.
    private let namespaceStates = Mutex<[String: (revision: Int64, deleting: Bool)]>([:])

    /// A write races another writer at most this many times before giving up.
    static let maxAttempts = 16

    /// The keys secrets are encrypted under; nil: secrets cannot be written or read here.
    let secrets: SecretKeyring?

    public init(store: any KeyValueStore, configuration: ConfigServiceConfiguration = .init(), secrets: SecretKeyring? = nil) {
        self.store = store
        self.configuration = configuration
        self.secrets = secrets
    }

    /// A config version with its content: for a secret, the ciphertext (see `reveal`).
    public struct Entry: Sendable {
        public var info: ConfigVersionInfo
        public var content: Data
        /// A secret's data key.
        var dataKeyID: String?

        init(_ record: ConfigRecord, key: String, revision: Int64) {
            info = record.info(key: key, revision: revision)
            content = record.content
            dataKeyID = record.header.dataKeyID
        }
    }

    // MARK: Reads

    /// The current content of `key`, or its content as of store revision `revision`.
    public func get(_ key: ConfigKey, revision: Int64? = nil) async throws -> Entry {
        if let revision {
            return try await versionAt(key, revision: revision)
        }
        let (entry, _) = try await current(key)
        guard let entry else { throw try await notFound(key) }
        return entry
    }

    /// The current content of `key` (nil when it has none), with the store revision the read
    /// was served at: one read, so a long poll from that revision misses nothing.
    public func current(_ key: ConfigKey) async throws -> (entry: Entry?, index: Int64) {
        let read = try await store.range(RangeRequest(.key(StoreLayout.config(key))))
        guard let kv = read.kvs.first else { return (nil, read.revision) }
        let record = try ConfigRecord.decode(kv.value)
        return (Entry(record, key: key.description, revision: kv.modRevision), read.revision)
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
    public func diff(_ key: ConfigKey, from: Int64, to: Int64? = nil, context: Int = 3) async throws -> String {
        let old = try await versionAt(key, revision: from)
        let new: Entry
        if let to {
            new = try await versionAt(key, revision: to)
        } else {
            new = try await get(key)
        }
        if old.dataKeyID != nil || new.dataKeyID != nil {
            throw CapstanError(
                .invalidArgument,
                "config \(key) is a secret at revision \(old.dataKeyID != nil ? old.info.revision : new.info.revision): secrets are not diffed; their versions' hashes are in its history")
        }
        return UnifiedDiff.make(
            old: String(decoding: old.content, as: UTF8.self),
            new: String(decoding: new.content, as: UTF8.self),
            oldLabel: "\(key)@\(old.info.revision)",
            newLabel: "\(key)@\(new.info.revision)", context: context)
    }

    /// The error for a key that is not there: names the namespace when that is what is missing.
    public func notFound(_ key: ConfigKey) async throws -> CapstanError {
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
        return Entry(record, key: key.description, revision: kv.modRevision)
    }

    static func sequence(of historyKey: String) -> Int64 { Int64(historyKey.suffix(20)) ?? 0 }

    /// History entries, newest first.
    func historyEntries(_ key: ConfigKey, limit: Int?) async throws -> [Entry] {
        let result = try await store.range(
            RangeRequest(.prefix(StoreLayout.historyPrefix(key)), limit: limit, descending: true))
        return try result.kvs.map { kv in
            return Entry(try ConfigRecord.decode(kv.value), key: key.description, revision: kv.modRevision)
        }
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
