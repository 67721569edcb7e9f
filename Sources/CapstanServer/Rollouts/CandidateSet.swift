import CapstanCore
import Foundation

/// The candidates a node renders: those of every open rollout it is a member of (all of a
/// rollout's candidates, never some of them). A key or template is held by one rollout at most,
/// so the sets of several rollouts never overlap.
struct CandidateSet: Sendable, Hashable {
    struct Config: Sendable, Hashable {
        var content: Data
        var format: ConfigFormat
        var revision: Int64
        var deleting: Bool
    }

    var configs: [String: Config] = [:]
    var templates: [String: TemplateInfo] = [:]

    var isEmpty: Bool { configs.isEmpty && templates.isEmpty }

    mutating func merge(_ other: CandidateSet) {
        configs.merge(other.configs) { _, new in new }
        templates.merge(other.templates) { _, new in new }
    }

    /// The templates as members see them: rolled definitions in place of the main ones.
    func apply(to templates: [TemplateInfo]) -> [TemplateInfo] {
        templates.map { self.templates[$0.name] ?? $0 }
    }

    /// Template inputs as members see them: candidates' content in place of the main versions,
    /// deleted keys gone (from prefixes too).
    func apply(to inputs: inout TemplateService.Inputs) {
        for (key, candidate) in configs {
            if candidate.deleting {
                inputs.configs[key] = nil
                for (prefix, keys) in inputs.prefixes where key.hasPrefix(prefix) {
                    inputs.prefixes[prefix] = keys.filter { $0 != key }
                }
            } else {
                inputs.configs[key] = (candidate.content, candidate.format, candidate.revision)
            }
        }
    }
}

extension TemplateService {
    /// Every template ready to send to the members of rollouts holding `candidates` (see
    /// `prepared()`): the candidates replace the main versions they stand for.
    func prepared(with candidates: CandidateSet) async throws -> [(binding: NodeBinding, assignment: TemplateAssignment)] {
        let templates = candidates.apply(to: try await records().map(\.info))
        var inputs = try await Inputs.read(for: templates, store: store)
        candidates.apply(to: &inputs)
        try await inputs.revealSecrets(for: templates, store: store, keyring: secrets, delivered: deliversSecrets)
        return templates.map { (NodeBinding(selector: $0.spec.selector, onlyOn: $0.onlyOn), inputs.assignment(for: $0)) }
    }
}
