/// A named set of access rules; an API token holds one role. Whatever no rule grants is denied.
public struct Role: Sendable, Hashable, Codable {
    public var name: String
    public var description: String
    public var rules: [AccessRule]
    /// Built-in roles exist on every server and cannot be changed or removed.
    public var builtIn: Bool

    public init(name: String, description: String = "", rules: [AccessRule], builtIn: Bool = false) {
        self.name = name
        self.description = description
        self.rules = rules
        self.builtIn = builtIn
    }

    /// Every action on everything; the root token's role.
    public static let admin = Role(
        name: "admin", description: "every action on every resource", rules: [AccessRule(resource: nil, actions: [.admin])], builtIn: true)
    /// Reads everything but secrets' values.
    public static let viewer = Role(
        name: "viewer", description: "reads every resource, but not secrets' values", rules: [AccessRule(resource: nil, actions: [.read])],
        builtIn: true)
    public static let builtIns = [admin, viewer]

    /// Whether the role may do `action` on the whole of `target` (a name, key or prefix) of `resource`.
    public func allows(_ action: AccessRule.Action, on resource: AccessRule.Resource, target: String = "") -> Bool {
        rules.contains { $0.grants(action, on: resource) && $0.covers(target, on: resource) }
    }

    /// Whether the role may do `action` on some part of `resource`.
    public func allowsSome(_ action: AccessRule.Action, on resource: AccessRule.Resource) -> Bool {
        rules.contains { $0.grants(action, on: resource) }
    }

    /// Where the role may run jobs: nil for every node, else the selectors of its `job` run rules
    /// (a node must match one of them); empty when it may run none.
    public var jobRunSelectors: [String]? { jobSelectors(for: .run) }

    /// The nodes whose jobs the role may `action` (read, run): nil for every node, else the
    /// selectors of its `job` rules granting it (a job's every node must match one); empty for none.
    public func jobSelectors(for action: AccessRule.Action) -> [String]? {
        let rules = rules.filter { $0.grants(action, on: .job) }
        if rules.contains(where: { $0.scope.isEmpty }) { return nil }
        return rules.map(\.scope)
    }

    /// Whether this role grants everything `other` grants: nobody hands out more than they hold.
    public func covers(_ other: Role) -> Bool {
        other.rules.allSatisfy { rule in
            let resources = rule.resource.map { [$0] } ?? AccessRule.Resource.allCases
            let actions: [AccessRule.Action] = rule.actions.contains(.admin) ? AccessRule.Action.allCases : Array(rule.actions)
            return resources.allSatisfy { resource in
                actions.allSatisfy { action in
                    if action == .readSecret && resource != .config { return true }
                    return rules.contains { mine in
                        mine.grants(action, on: resource) && (mine.scope.isEmpty || mine.covers(rule.scope, on: resource) && !rule.scope.isEmpty)
                    }
                }
            }
        }
    }

    /// Role names: lowercase letters, digits, `-`, `.` and `_`, at most 63 characters.
    public static func validate(name: String) throws(CapstanError) {
        guard !name.isEmpty, name.count <= 63 else {
            throw CapstanError(.invalidArgument, "role name must be 1 to 63 characters, got \(name.count)")
        }
        guard let first = name.first, first.isASCII, first.isLowercase || first.isNumber,
            name.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || "-._".contains($0)) })
        else {
            throw CapstanError(
                .invalidArgument, "role name \(name.quoted) must be lowercase letters, digits, \"-\", \".\" and \"_\", starting with a letter or digit")
        }
    }
}
