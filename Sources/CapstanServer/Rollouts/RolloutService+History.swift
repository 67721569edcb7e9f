import CapstanCore
import CapstanStore
import Foundation

extension RolloutService {
    /// The candidates rollouts held for `key`, as history entries: each says its rollout and
    /// whether it is open, was promoted, or was abandoned (the rollout aborted).
    public func candidateHistory(_ key: ConfigKey) async throws -> [ConfigVersionInfo] {
        let prefix = StoreLayout.configRolloutHistoryPrefix(key.description)
        var items: [ConfigVersionInfo] = []
        for kv in try await store.range(RangeRequest(.prefix(prefix), keysOnly: true)).kvs {
            let name = String(kv.key.dropFirst(prefix.count))
            guard let (record, _) = try? await read(name), let (candidate, revision) = try await configCandidate(name, key: key.description)
            else { continue }
            let outcome =
                switch record.state {
                case .running, .paused: "open"
                case .promoted: "promoted"
                case .aborted: "abandoned"
                }
            var info = candidate.info(key: key.description, revision: revision)
            info.version = 0
            info.rollout = name
            info.comment = "candidate of rollout \(name) (\(outcome))" + (candidate.header.comment.isEmpty ? "" : ": \(candidate.header.comment)")
            items.append(info)
        }
        return items
    }
}
