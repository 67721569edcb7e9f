import CapstanCore
import CapstanStore
import Foundation

extension RolloutService {
    /// What an identified reader sees of `key` when a rollout's candidate is for it.
    public struct CandidateView: Sendable {
        public var rollout: String
        /// The candidate's content; nil when the candidate deletes the key.
        public var entry: ConfigService.Entry?
        /// The store revision the view was read at (for a long poll's next `index`).
        public var index: Int64
    }

    /// The candidate `client` reads for `key`, or nil when it reads the main version (no open
    /// rollout holds the key, or the client is not one of its members).
    ///
    /// - Parameter revision: as of this store revision (a watch replaying events); nil: now.
    public func view(_ key: ConfigKey, for client: ClientIdentity, at revision: Int64? = nil) async throws -> CandidateView? {
        let read = try await store.range(RangeRequest(.key(StoreLayout.configRollout(key.description)), revision: revision))
        guard let held = read.kvs.first else { return nil }
        let name = String(decoding: held.value, as: UTF8.self)
        guard let kv = try await store.range(RangeRequest(.key(StoreLayout.rollout(name)), revision: revision)).kvs.first else { return nil }
        let record = try self.record(name, kv)
        guard record.state.isOpen, record.audience.containsClient(rollout: name, client),
            let stored = try await store.range(
                RangeRequest(.key(StoreLayout.configCandidate(name, key: key.description)), revision: revision)
            ).kvs.first
        else { return nil }
        let candidate = try ConfigRecord.decode(stored.value)
        let revision = stored.modRevision
        let entry = candidate.header.action == .put ? ConfigService.Entry(candidate, key: key.description, revision: revision) : nil
        return CandidateView(rollout: name, entry: entry, index: read.revision)
    }

    /// Blocks until what `client` reads of `key` may have changed after store revision `index`
    /// (the key's main version, or its rollout: a candidate, a step, the end), or `timeout` passes.
    public func waitForChange(_ key: ConfigKey, for client: ClientIdentity, after index: Int64, timeout: Duration) async throws {
        let configs = self.configs
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await configs.waitForChange(key, after: index, timeout: timeout) }
            group.addTask { try await configs.waitForStoreKey(StoreLayout.configRollout(key.description), after: index, timeout: timeout) }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    /// Changes under `prefix` as `client` sees them: main versions, and for keys held by a
    /// rollout it is a member of, the candidates (again at each change of the rollout, and the
    /// main version once it closes).
    ///
    /// One ordered store watch covers both the keys and the rollouts' index keys, so a watch
    /// resumed from a revision misses nothing.
    public func watch(_ prefix: KeyPrefix, from revision: Int64?, for client: ClientIdentity)
        -> some AsyncSequence<[ConfigEvent], any Error> & Sendable
    {
        let range = KeyRange.interval(from: StoreLayout.configRollouts, to: StoreLayout.root + "config0")
        let configPrefix = StoreLayout.configPrefix(prefix)
        let indexPrefix = StoreLayout.configRollouts + prefix.keyPrefix
        return store.watch(range, fromRevision: revision).map { batch in
            try await self.events(batch, configPrefix: configPrefix, indexPrefix: indexPrefix, client: client)
        }
    }

    private func events(_ batch: [WatchEvent], configPrefix: String, indexPrefix: String, client: ClientIdentity) async throws -> [ConfigEvent] {
        var events: [ConfigEvent] = []
        var mainChanged: Set<String> = []
        for event in batch where event.kv.key.hasPrefix(configPrefix) {
            let converted = try ConfigService.event(event)
            mainChanged.insert(converted.key)
            events.append(converted)
        }
        for event in batch where event.kv.key.hasPrefix(indexPrefix) {
            let key = String(event.kv.key.dropFirst(StoreLayout.configRollouts.count))
            guard !mainChanged.contains(key), let configKey = try? ConfigKey(key) else { continue }
            // As of the event's revision: a watch replaying from an older revision sees what was.
            if let view = try await self.view(configKey, for: client, at: event.revision) {
                guard let entry = view.entry else {
                    events.append(ConfigEvent(type: .delete, key: key, revision: event.revision))
                    continue
                }
                events.append(
                    ConfigEvent(
                        type: .put, key: key, revision: event.revision, version: entry.info.version, format: entry.info.format,
                        content: String(decoding: entry.content, as: UTF8.self), author: entry.info.author,
                        comment: "candidate of rollout \(view.rollout)", time: entry.info.time))
            } else if event.kind == .delete {
                // The rollout closed (aborted: promotion changes the key itself): the main version.
                let read = try await store.range(RangeRequest(.key(StoreLayout.config(configKey)), revision: event.revision))
                guard let stored = read.kvs.first else {
                    events.append(ConfigEvent(type: .delete, key: key, revision: event.revision))
                    continue
                }
                let main = try ConfigRecord.decode(stored.value)
                events.append(
                    ConfigEvent(
                        type: .put, key: key, revision: event.revision, version: main.header.sequence, format: main.header.format,
                        content: main.isSecret ? nil : String(decoding: main.content, as: UTF8.self), author: main.header.author,
                        comment: main.header.comment, time: main.header.time, secret: main.isSecret ? true : nil))
            }
        }
        return events.sorted { $0.revision < $1.revision }
    }
}
