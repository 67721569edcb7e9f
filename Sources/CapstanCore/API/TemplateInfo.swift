import Foundation

/// What `template put` sends: a config file rendered on every node the selector picks.
public struct TemplateSpec: Codable, Sendable, Hashable {
    /// Nodes the template binds (empty: every node).
    public var selector: String
    /// The config key holding the Mustache text, `NS/KEY`.
    public var source: String
    /// Absolute path of the rendered file on the node.
    public var dest: String
    /// Config keys or prefixes parsed and merged, later ones winning, into the root context.
    public var data: [String]
    /// File mode of the rendered file, e.g. 0o644.
    public var mode: Int
    /// Accepts a `mode` that lets every local user write the file (o+w); refused otherwise.
    public var allowWorldWritable: Bool?
    /// Checks the rendered file before it replaces the destination; `{{src}}` is its temp path.
    public var check: String?
    /// Runs after the file changed; when it fails, the previous file is restored.
    public var reload: String?
    /// Longest random wait before the reload, in milliseconds, so nodes do not reload at once.
    public var splayMilliseconds: Int64
    /// Run `check` and `reload` through `/bin/sh -c` instead of as argv.
    public var shell: Bool
    /// Secret config keys the source may reference as `{{secret "NS/KEY"}}`; only these are
    /// resolved, and putting the template needs the read-secret right on each.
    public var secrets: [String]?

    public init(
        selector: String, source: String, dest: String, data: [String] = [], mode: Int = 0o644, check: String? = nil,
        reload: String? = nil, splayMilliseconds: Int64 = 0, shell: Bool = false, secrets: [String]? = nil,
        allowWorldWritable: Bool? = nil
    ) {
        self.selector = selector
        self.source = source
        self.dest = dest
        self.data = data
        self.mode = mode
        self.check = check
        self.reload = reload
        self.splayMilliseconds = splayMilliseconds
        self.shell = shell
        self.secrets = secrets
        self.allowWorldWritable = allowWorldWritable
    }

    /// Why `mode` is refused: a world-writable file lets any local user change what a service
    /// reads (and what a reload then runs on), unless the template asks for it.
    public var worldWritableRefusal: String? {
        guard mode & 0o002 != 0, allowWorldWritable != true else { return nil }
        return "mode 0\(String(mode, radix: 8)) lets every local user write the file: "
            + "give another mode, or pass --allow-world-writable (allowWorldWritable: true) if that is meant"
    }
}

public struct TemplateInfo: Codable, Sendable, Hashable {
    public var name: String
    public var spec: TemplateSpec
    public var updatedAt: Date
    /// Store revision of the template record.
    public var revision: Int64
    /// For a template with check or reload commands: the selectors of its author's job run rules;
    /// it binds only nodes matching one of them. Absent when its author may run jobs anywhere.
    public var onlyOn: [String]?

    public init(name: String, spec: TemplateSpec, updatedAt: Date, revision: Int64, onlyOn: [String]? = nil) {
        self.name = name
        self.spec = spec
        self.updatedAt = updatedAt
        self.revision = revision
        self.onlyOn = onlyOn
    }
}

public struct TemplateList: Codable, Sendable, Hashable {
    public var items: [TemplateInfo]

    public init(items: [TemplateInfo]) {
        self.items = items
    }
}

/// Where a node is with a template.
public enum TemplateState: String, Codable, Sendable, Hashable {
    /// The node rendered the template's current inputs and its file is in place.
    case applied
    /// The node tried and failed (render, check, write or reload); the old file stays.
    case failed
    /// The node has not reported on the template's current inputs yet.
    case pending
}

/// A node's report on a template.
public struct TemplateReport: Codable, Sendable, Hashable {
    public var template: String
    /// The inputs' revision the node rendered (`TemplateAssignment.revision`).
    public var revision: Int64
    public var state: TemplateState
    public var error: String?
    public var time: Date

    public init(template: String, revision: Int64, state: TemplateState, error: String?, time: Date) {
        self.template = template
        self.revision = revision
        self.state = state
        self.error = error
        self.time = time
    }
}

/// `template status`: the rollout of one template over the nodes it binds.
public struct TemplateStatus: Codable, Sendable, Hashable {
    public struct Node: Codable, Sendable, Hashable {
        public var name: String
        public var state: TemplateState
        /// The revision the node last reported on (nil: never).
        public var revision: Int64?
        public var error: String?

        public init(name: String, state: TemplateState, revision: Int64?, error: String?) {
            self.name = name
            self.state = state
            self.revision = revision
            self.error = error
        }

        /// A node's state from its last report: `pending` without one, or with one on an older
        /// revision than `current`; the error shows only when the state is `failed`.
        public init(name: String, report: TemplateReport?, current: Int64) {
            guard let report else {
                self.init(name: name, state: .pending, revision: nil, error: nil)
                return
            }
            let state = report.revision >= current ? report.state : .pending
            self.init(name: name, state: state, revision: report.revision, error: state == .failed ? report.error : nil)
        }
    }

    public var name: String
    /// The revision of the template's inputs now: what every node should have applied.
    public var revision: Int64
    public var applied: Int
    public var failed: Int
    public var pending: Int
    public var nodes: [Node]

    public init(name: String, revision: Int64, nodes: [Node]) {
        self.name = name
        self.revision = revision
        self.nodes = nodes
        applied = nodes.count { $0.state == .applied }
        failed = nodes.count { $0.state == .failed }
        pending = nodes.count { $0.state == .pending }
    }
}

/// What the server sends an agent for one template that binds its node: everything needed to
/// render and apply it without asking again.
public struct TemplateAssignment: Codable, Sendable, Hashable {
    public var name: String
    /// The highest store revision among the template and its inputs: what the node reports.
    public var revision: Int64
    public var spec: TemplateSpec
    /// The Mustache text (the source key's content).
    public var source: String?
    /// The data configs, parsed and merged; nil when the source or a data key is missing or does
    /// not parse (then `problem` says why, and the node reports the template failed).
    public var data: ConfigValue?
    public var problem: String?

    public init(name: String, revision: Int64, spec: TemplateSpec, source: String?, data: ConfigValue?, problem: String?) {
        self.name = name
        self.revision = revision
        self.spec = spec
        self.source = source
        self.data = data
        self.problem = problem
    }
}
