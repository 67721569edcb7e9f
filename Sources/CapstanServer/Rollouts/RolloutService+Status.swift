import CapstanCore
import CapstanStore
import Foundation

extension RolloutService {
    /// Where the rollout stands on every node its selector picks: member or not, liveness, and
    /// for members the states of the templates its candidates change.
    public func status(_ name: String) async throws -> RolloutStatus {
        let (record, revision) = try await read(name)
        let info = try await info(name, record, revision: revision)
        let nodes = try await members(name, record)
        let rolled = record.state.isOpen ? try await rolledTemplates(name) : [:]
        var states: [RolloutStatus.Node] = []
        for (node, member) in nodes {
            var templateStates: [String: TemplateState]?
            if member, !rolled.isEmpty {
                templateStates = [:]
                for (template, rolled) in rolled where rolled.binds(node) {
                    templateStates?[template] = try await templateState(template, node: node.name, expected: rolled.expected)
                }
            }
            states.append(
                RolloutStatus.Node(name: node.name, member: member, connected: node.connected, status: node.status, templates: templateStates))
        }
        let gates = record.state.isOpen ? try await evaluateGates(name, record, nodes: nodes) : []
        return RolloutStatus(rollout: info, members: states.count(where: \.member), nodes: states, gates: gates)
    }

    /// The nodes the selector picks, each with whether it is a member now.
    func members(_ name: String, _ record: RolloutRecord) async throws -> [(node: NodeInfo, member: Bool)] {
        let audience = record.audience
        return try await registry.list(selector: audience.selector).map { node in
            (node, record.state.isOpen && audience.containsNode(rollout: name, name: node.name, labels: node.labels))
        }
    }

    /// A template a rollout's candidates change, as members see it.
    struct RolledTemplate: Sendable {
        /// The revision a member must have reported to have applied it.
        var expected: Int64
        var binding: NodeBinding
        /// A template with secrets binds by server labels (see `TemplatePusher`).
        var bySecrets: Bool

        func binds(_ node: NodeInfo) -> Bool {
            binding.matches(labels: bySecrets ? node.serverLabels : node.labels, name: node.name)
        }
    }

    /// The templates the rollout's candidates change (a rolled definition, or one reading a
    /// candidate key).
    func rolledTemplates(_ name: String) async throws -> [String: RolledTemplate] {
        let candidates = try await candidates(name)
        guard !candidates.isEmpty else { return [:] }
        let main = try await templates.records().map(\.info)
        var inputs = try await TemplateService.Inputs.read(for: candidates.apply(to: main), store: store)
        candidates.apply(to: &inputs)
        var rolled: [String: RolledTemplate] = [:]
        for template in candidates.apply(to: main) {
            let keys = Set(inputs.keys(of: template)).union([template.spec.source] + template.spec.data)
            let touched = candidates.templates[template.name] != nil || keys.contains { candidates.configs[$0] != nil }
            if touched {
                rolled[template.name] = RolledTemplate(
                    expected: inputs.revision(of: template), binding: NodeBinding(selector: template.spec.selector, onlyOn: template.onlyOn),
                    bySecrets: !(template.spec.secrets ?? []).isEmpty)
            }
        }
        return rolled
    }

    /// A node's state on a template: its last report, pending until it reported `expected`.
    func templateState(_ template: String, node: String, expected: Int64) async throws -> TemplateState {
        guard let kv = try await store.get(StoreLayout.templateStatus(template, node: node)),
            let report = try? RecordCoding.decoder.decode(TemplateReport.self, from: kv.value)
        else { return .pending }
        return report.revision >= expected ? report.state : .pending
    }
}
