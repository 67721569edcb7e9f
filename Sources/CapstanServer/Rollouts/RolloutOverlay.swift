import CapstanCore
import CapstanStore
import Foundation

/// The open rollouts that hold candidates, as the template push consults them: which rollouts
/// a node is a member of, and the candidates it then renders.
struct RolloutOverlay: Sendable {
    struct Entry: Sendable {
        var name: String
        var audience: RolloutAudience
        var candidates: CandidateSet
    }

    var entries: [Entry]

    /// The rollouts `node` is a member of, by name (sorted): nodes with the same list render the
    /// same candidates.
    func memberships(node: String, labels: [String: String]) -> [String] {
        entries.filter { $0.audience.containsNode(rollout: $0.name, name: node, labels: labels) }.map(\.name)
    }

    /// The candidates of the rollouts named.
    func candidates(of rollouts: [String]) -> CandidateSet {
        var set = CandidateSet()
        for entry in entries where rollouts.contains(entry.name) { set.merge(entry.candidates) }
        return set
    }
}

extension RolloutService {
    /// The open rollouts with candidates, read for one template push. A rollout's candidates
    /// are read again only when its record changed (every candidate written changes it).
    func overlay() async throws -> RolloutOverlay {
        var entries: [RolloutOverlay.Entry] = []
        for kv in try await store.range(RangeRequest(.prefix(StoreLayout.rollouts))).kvs {
            let name = String(kv.key.dropFirst(StoreLayout.rollouts.count))
            guard let record = try? self.record(name, kv), record.state.isOpen, !record.candidates.isEmpty else { continue }
            if let cached = overlayCache.withLock({ $0[name] }), cached.revision == kv.modRevision {
                entries.append(cached.entry)
                continue
            }
            let entry = RolloutOverlay.Entry(name: name, audience: record.audience, candidates: try await candidates(name))
            overlayCache.withLock { $0[name] = (kv.modRevision, entry) }
            entries.append(entry)
        }
        overlayCache.withLock { cache in
            let open = Set(entries.map(\.name))
            cache = cache.filter { open.contains($0.key) }
        }
        return RolloutOverlay(entries: entries.sorted { $0.name < $1.name })
    }

    /// Every candidate a rollout holds, with its content.
    func candidates(_ name: String) async throws -> CandidateSet {
        var set = CandidateSet()
        let prefix = StoreLayout.rolloutCandidatePrefix(name)
        for kv in try await store.range(RangeRequest(.prefix(prefix))).kvs {
            let path = String(kv.key.dropFirst(prefix.count))
            if path.hasPrefix("config/") {
                let record = try ConfigRecord.decode(kv.value)
                set.configs[String(path.dropFirst("config/".count))] = CandidateSet.Config(
                    content: record.content, format: record.header.format, revision: kv.modRevision, deleting: record.header.action == .delete)
            } else if path.hasPrefix("template/") {
                let template = String(path.dropFirst("template/".count))
                let record = try RecordCoding.decoder.decode(TemplateService.Record.self, from: kv.value)
                set.templates[template] = TemplateInfo(
                    name: template, spec: record.spec, updatedAt: record.updatedAt, revision: kv.modRevision, onlyOn: record.onlyOn)
            }
        }
        return set
    }
}
