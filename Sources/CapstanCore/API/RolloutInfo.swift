import Foundation

/// What `rollout start` sends: who gets the candidates, in which steps, and when to stop.
public struct RolloutSpec: Codable, Sendable, Hashable {
    public enum FailurePolicy: String, Codable, Sendable, Hashable, CaseIterable {
        case pause, abort
    }

    /// Nodes (and identified API clients) the rollout may reach; empty: all of them.
    public var selector: String
    /// Each step's share of the selected nodes, in percent (1 to 100, increasing). Exactly one
    /// of `percentSteps` and `nodeSteps` is set.
    public var percentSteps: [Int]?
    /// Each step's number of member nodes (increasing), for `--nodes`.
    public var nodeSteps: [Int]?
    /// How long a step runs, its gates holding, before the next one starts by itself; nil: steps
    /// move only on `rollout step`.
    public var stepIntervalMilliseconds: Int64?
    /// Health gates (`check=NAME`, `template-failures=N`, `unhealthy=N`, `metric:load1<4`).
    public var gates: [String]
    public var onFailure: FailurePolicy
    /// Promote by itself once the last step's gates held for the step interval.
    public var autoPromote: Bool

    public init(
        selector: String = "", percentSteps: [Int]? = nil, nodeSteps: [Int]? = nil, stepIntervalMilliseconds: Int64? = nil,
        gates: [String] = [], onFailure: FailurePolicy = .pause, autoPromote: Bool = false
    ) {
        self.selector = selector
        self.percentSteps = percentSteps
        self.nodeSteps = nodeSteps
        self.stepIntervalMilliseconds = stepIntervalMilliseconds
        self.gates = gates
        self.onFailure = onFailure
        self.autoPromote = autoPromote
    }

    /// The steps, whichever kind they are.
    public var steps: [Int] { percentSteps ?? nodeSteps ?? [] }

    /// A step as people say it: `10%` or `3 nodes`.
    public func describe(step index: Int) -> String {
        guard steps.indices.contains(index) else { return "-" }
        return percentSteps != nil ? "\(steps[index])%" : "\(steps[index]) node\(steps[index] == 1 ? "" : "s")"
    }
}

public enum RolloutState: String, Codable, Sendable, Hashable {
    /// Members get the candidates; steps move on.
    case running
    /// Members keep the candidates; steps stand still (a gate failed, or someone paused it).
    case paused
    /// The candidates became the main versions.
    case promoted
    /// Members went back to the main versions; the candidates are kept as abandoned.
    case aborted

    /// Whether the rollout still holds its keys and templates.
    public var isOpen: Bool { self == .running || self == .paused }
}

/// One candidate a rollout holds: a config key's next content (or its deletion), or a
/// template's next definition.
public struct RolloutCandidate: Codable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable, Hashable {
        case config, template
    }

    public enum Action: String, Codable, Sendable, Hashable {
        case put, delete
    }

    public var kind: Kind
    /// The config key (`NS/PATH`) or the template name.
    public var name: String
    public var action: Action
    /// For a config put: its format and size.
    public var format: ConfigFormat?
    public var size: Int?
    public var sha256: String?
    /// Store revision the candidate was written at.
    public var revision: Int64
    public var author: String
    public var time: Date

    public init(
        kind: Kind, name: String, action: Action, format: ConfigFormat? = nil, size: Int? = nil, sha256: String? = nil, revision: Int64,
        author: String, time: Date
    ) {
        self.kind = kind
        self.name = name
        self.action = action
        self.format = format
        self.size = size
        self.sha256 = sha256
        self.revision = revision
        self.author = author
        self.time = time
    }
}

/// One change of a rollout: who did what, when.
public struct RolloutTransition: Codable, Sendable, Hashable {
    /// `start`, `candidate`, `step`, `pause`, `resume`, `promote`, `abort`.
    public var action: String
    public var actor: String
    public var time: Date
    public var detail: String

    public init(action: String, actor: String, time: Date, detail: String) {
        self.action = action
        self.actor = actor
        self.time = time
        self.detail = detail
    }
}

public struct RolloutInfo: Codable, Sendable, Hashable {
    public var name: String
    public var spec: RolloutSpec
    public var state: RolloutState
    /// Index of the current step in `spec.steps`.
    public var step: Int
    /// Share of the hash space under which a node or client name is in (0 to 1): what the
    /// percentage steps set, and what identified API clients are measured against.
    public var share: Double
    /// With `--nodes`: the nodes admitted so far, in the order they were.
    public var admitted: [String]?
    public var candidates: [RolloutCandidate]
    public var transitions: [RolloutTransition]
    public var createdAt: Date
    public var stepStartedAt: Date
    /// Store revision of the rollout record.
    public var revision: Int64

    public init(
        name: String, spec: RolloutSpec, state: RolloutState, step: Int, share: Double, admitted: [String]?, candidates: [RolloutCandidate],
        transitions: [RolloutTransition], createdAt: Date, stepStartedAt: Date, revision: Int64
    ) {
        self.name = name
        self.spec = spec
        self.state = state
        self.step = step
        self.share = share
        self.admitted = admitted
        self.candidates = candidates
        self.transitions = transitions
        self.createdAt = createdAt
        self.stepStartedAt = stepStartedAt
        self.revision = revision
    }
}

public struct RolloutList: Codable, Sendable, Hashable {
    public var items: [RolloutInfo]

    public init(items: [RolloutInfo]) {
        self.items = items
    }
}

/// `rollout status`: where the rollout stands on each selected node.
public struct RolloutStatus: Codable, Sendable, Hashable {
    public struct Node: Codable, Sendable, Hashable {
        public var name: String
        public var member: Bool
        public var connected: Bool
        public var status: NodeStatus
        /// For members: the rolled templates' states on the node (`applied`, `failed`, `pending`).
        public var templates: [String: TemplateState]?

        public init(name: String, member: Bool, connected: Bool, status: NodeStatus, templates: [String: TemplateState]? = nil) {
            self.name = name
            self.member = member
            self.connected = connected
            self.status = status
            self.templates = templates
        }
    }

    public struct Gate: Codable, Sendable, Hashable {
        public var gate: String
        public var passing: Bool
        public var detail: String

        public init(gate: String, passing: Bool, detail: String) {
            self.gate = gate
            self.passing = passing
            self.detail = detail
        }
    }

    public var rollout: RolloutInfo
    public var members: Int
    public var nodes: [Node]
    public var gates: [Gate]

    public init(rollout: RolloutInfo, members: Int, nodes: [Node], gates: [Gate]) {
        self.rollout = rollout
        self.members = members
        self.nodes = nodes
        self.gates = gates
    }
}

/// Who an API reader says it is (`X-Capstan-Client: NAME; k=v,k2=v2`): rollouts decide by
/// these which version it reads.
public struct ClientIdentity: Sendable, Hashable {
    public var name: String
    public var labels: [String: String]

    public init(name: String, labels: [String: String] = [:]) {
        self.name = name
        self.labels = labels
    }

    /// Parses the header's value: a name (as node names are written), then optionally `;` and
    /// comma-separated `k=v` labels.
    public init(header: String) throws(CapstanError) {
        let parts = header.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)
        let name = parts[0].trimmingCharacters(in: .whitespaces)
        do { try NodeName.validate(name) } catch {
            throw CapstanError(
                .invalidArgument,
                "X-Capstan-Client: " + error.message.replacingOccurrences(of: "node name", with: "client name")
                    + " (write NAME; k=v,k2=v2)")
        }
        var labels: [String: String] = [:]
        if parts.count == 2 {
            for item in parts[1].split(separator: ",") {
                let pair = item.trimmingCharacters(in: .whitespaces)
                if pair.isEmpty { continue }
                guard let equals = pair.firstIndex(of: "=") else {
                    throw CapstanError(.invalidArgument, "X-Capstan-Client: label \(pair.quoted) must be k=v (write NAME; k=v,k2=v2)")
                }
                let key = String(pair[..<equals])
                let value = String(pair[pair.index(after: equals)...])
                do {
                    try Labels.validateKey(key)
                    try Labels.validateValue(value, key: key)
                } catch {
                    throw CapstanError(.invalidArgument, "X-Capstan-Client: \(error.message)")
                }
                labels[key] = value
            }
        }
        self.init(name: name, labels: labels)
    }

    /// The header's value for this identity.
    public var header: String {
        labels.isEmpty ? name : name + "; " + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
}

/// `POST /v1/rollouts`: a rollout's name and spec.
public struct RolloutStart: Codable, Sendable, Hashable {
    public var name: String
    public var spec: RolloutSpec

    public init(name: String, spec: RolloutSpec) {
        self.name = name
        self.spec = spec
    }
}
