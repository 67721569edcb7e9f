import CapstanCore
import NIOCore

/// The template sets of one push: each connected node's set, computed from the inputs read once
/// for the push. Nodes with the same labels (and so the same set) share one digest and one
/// encoded, framed message: a fleet of 10,000 mostly falls into a handful of groups.
struct PushSets {
    typealias Prepared = [(binding: NodeBinding, assignment: TemplateAssignment)]

    /// What decides a node's set: the templates and checks that bind it, the labels its set
    /// carries, and the rollouts it is a member of.
    struct Group: Hashable {
        var indices: [Int]
        var checks: [Int]
        var labels: [String: String]
        var serverLabels: [String: String]
        var rollouts: [String]
    }

    /// A set as sent: its digest, and its message framed for the WebSocket.
    typealias Message = (digest: String, text: FramedText)

    private let labels: [String: TemplatePusher.NodeLabels]
    private let templates: TemplateService
    private let mainPrepared: Prepared
    private let preparedChecks: [(binding: NodeBinding, assignment: CheckAssignment)]
    /// Members of rollouts get sets with the candidates of every rollout they are in.
    private let overlay: RolloutOverlay?
    private var rolledPrepared: [[String]: Prepared] = [:]
    private var messages: [Group: Message] = [:]

    /// Reads the templates, checks and rollouts as they are now; `labels` are the connected nodes'.
    init(labels: [String: TemplatePusher.NodeLabels], templates: TemplateService, checks: CheckService, rollouts: RolloutService?) async throws {
        self.labels = labels
        self.templates = templates
        mainPrepared = try await templates.prepared()
        preparedChecks = try await checks.prepared()
        overlay = try await rollouts?.overlay()
    }

    /// The set of the node `name`, built once per group.
    mutating func message(for name: String) async throws -> Message {
        let nodeLabels = labels[name]?.merged ?? [:]
        let serverLabels = labels[name]?.server ?? [:]
        let memberOf = overlay?.memberships(node: name, labels: nodeLabels) ?? []
        let prepared = try await prepared(for: memberOf)
        let indices = prepared.indices.filter {
            // A template that carries secrets binds by the server's labels and the name only.
            let carriesSecrets = !(prepared[$0].assignment.spec.secrets ?? []).isEmpty
            return prepared[$0].binding.matches(labels: carriesSecrets ? serverLabels : nodeLabels, name: name)
        }
        let checkIndices = preparedChecks.indices.filter {
            preparedChecks[$0].binding.matches(labels: nodeLabels, name: name)
        }
        let group = Group(indices: indices, checks: checkIndices, labels: nodeLabels, serverLabels: serverLabels, rollouts: memberOf)
        if let cached = messages[group] { return cached }
        let message = try Self.encode(group, prepared: prepared, checks: preparedChecks)
        messages[group] = message
        return message
    }

    /// The templates as the members of `rollouts` see them (the main versions for a node in none).
    private mutating func prepared(for rollouts: [String]) async throws -> Prepared {
        guard !rollouts.isEmpty, let overlay else { return mainPrepared }
        if let known = rolledPrepared[rollouts] { return known }
        let prepared = try await templates.prepared(with: overlay.candidates(of: rollouts))
        rolledPrepared[rollouts] = prepared
        return prepared
    }

    private static func encode(
        _ group: Group, prepared: Prepared, checks: [(binding: NodeBinding, assignment: CheckAssignment)]
    ) throws -> Message {
        let set = group.indices.map { prepared[$0].assignment }
        let checkSet = group.checks.map { checks[$0].assignment }
        let digest = TemplateService.digest(set, labels: group.labels, checks: checkSet)
        let text = try AgentMessage.encode(
            AgentMessage(type: .templates, templates: .init(assignments: set, labels: group.labels, digest: digest, checks: checkSet)))
        return (digest, FramedText(ByteBuffer(string: text)))
    }
}
