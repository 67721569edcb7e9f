import CapstanCore
import CapstanStore
import Foundation
import ServiceLifecycle

extension ConfigService {
    /// The store's current and compacted revisions.
    public func status() async throws -> StoreStatus {
        try await store.status()
    }

    /// Changes under `prefix` from store revision `from` (nil: from now on), as config events.
    ///
    /// - Throws: (when iterated) `CapstanError` `compacted` if `from` is no longer retained.
    public func watch(_ prefix: KeyPrefix, from revision: Int64?) -> some AsyncSequence<[ConfigEvent], any Error> & Sendable {
        store.watch(.prefix(StoreLayout.configPrefix(prefix)), fromRevision: revision).map { batch in
            try batch.map(Self.event)
        }
    }

    static func event(_ event: WatchEvent) throws -> ConfigEvent {
        let key = StoreLayout.configKey(fromStoreKey: event.kv.key)
        switch event.kind {
        case .delete:
            return ConfigEvent(type: .delete, key: key, revision: event.revision)
        case .put:
            let record = try ConfigRecord.decode(event.kv.value)
            // A secret's content stays out of watches: a client that may read it fetches it.
            return ConfigEvent(
                type: .put, key: key, revision: event.revision, version: record.header.sequence,
                format: record.header.format, content: record.isSecret ? nil : String(decoding: record.content, as: UTF8.self),
                author: record.header.author, comment: record.header.comment, time: record.header.time,
                secret: record.isSecret ? true : nil)
        }
    }

    /// Blocks until `key` changes after store revision `index` or `timeout` passes (Consul-style
    /// blocking query). Answers at once when the key already changed after `index`.
    public func waitForChange(_ key: ConfigKey, after index: Int64, timeout: Duration) async throws {
        let storeKey = StoreLayout.config(key)
        if let current = try await store.get(storeKey), current.modRevision > index { return }
        let history = try await store.range(
            RangeRequest(.prefix(StoreLayout.historyPrefix(key)), limit: 1, keysOnly: true, descending: true))
        if let latest = history.kvs.first, latest.modRevision > index { return }
        try await waitForEvent(on: .key(storeKey), after: index, timeout: timeout)
    }

    /// Blocks until anything under `prefix` changes after `index` or `timeout` passes.
    public func waitForChange(_ prefix: KeyPrefix, after index: Int64, timeout: Duration) async throws {
        try await waitForEvent(on: .prefix(StoreLayout.configPrefix(prefix)), after: index, timeout: timeout)
    }

    /// Blocks until the store key `storeKey` changes (or goes) after `index`, or `timeout` passes.
    func waitForStoreKey(_ storeKey: String, after index: Int64, timeout: Duration) async throws {
        if let current = try await store.get(storeKey), current.modRevision > index { return }
        try await waitForEvent(on: .key(storeKey), after: index, timeout: timeout)
    }

    private func waitForEvent(on range: KeyRange, after index: Int64, timeout: Duration) async throws {
        let status = try await store.status()
        // A revision already compacted cannot be waited on precisely: answer now and let the
        // client read the current state.
        if index < status.compactRevision || index > status.revision { return }
        let watch = store.watch(range, fromRevision: index + 1)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await batch in watch where !batch.isEmpty { return }
            }
            group.addTask {
                try await Task.sleep(for: min(timeout, self.configuration.maxWait))
            }
            group.addTask {
                // On shutdown, answer the poll now (as a timeout) instead of holding the server up.
                try await gracefulShutdown()
            }
            defer { group.cancelAll() }
            do {
                try await group.next()
            } catch let error as StoreError where error.code == .compacted {
                return
            }
        }
    }
}
