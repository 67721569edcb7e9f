/// What a rule of a role grants: actions on a resource within a scope.
///
/// Written `RESOURCE:SCOPE:ACTIONS`, e.g. `config:prod/order-service/:read,write`:
///
/// - `RESOURCE` is one of ``Resource`` or `*` for all of them.
/// - `SCOPE` limits the rule to part of the resource; empty or `*` means all of it.
///   For `job` it is a node selector (`env=staging`): jobs may run only on nodes it picks.
///   For every other resource it is a prefix of the name (`config`: of `NAMESPACE/PATH`), matched
///   as plain text: `prod/` covers the namespace `prod`, `prod` also covers `production`.
///   `audit`, `token` and `role` take no scope.
/// - `ACTIONS` is a comma-separated list of ``Action``; `admin` grants every action.
public struct AccessRule: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Resource: String, Sendable, Hashable, Codable, CaseIterable {
        case config, namespace, node, template, job, schedule, check, audit, token, role

        /// Whether the scope is a node selector rather than a name prefix.
        public var scopeIsSelector: Bool { self == .job }

        /// Whether the resource takes no scope.
        public var isUnscoped: Bool { [.audit, .token, .role].contains(self) }
    }

    public enum Action: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
        case read, write, delete, run, admin
        /// Reading a secret's value (`config` only); `read` shows that a secret exists, not its value.
        case readSecret = "read-secret"

        public static func < (lhs: Self, rhs: Self) -> Bool {
            allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
        }
    }

    /// nil for `*`: every resource.
    public var resource: Resource?
    /// Empty for all of the resource.
    public var scope: String
    public var actions: Set<Action>

    public init(resource: Resource?, scope: String = "", actions: Set<Action>) {
        self.resource = resource
        self.scope = scope == "*" ? "" : scope
        self.actions = actions
    }

    /// Parses `RESOURCE:SCOPE:ACTIONS`; the scope may itself contain `:`.
    public init(parsing text: String) throws(CapstanError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let first = trimmed.firstIndex(of: ":"), let last = trimmed.lastIndex(of: ":"), first != last else {
            throw CapstanError(
                .invalidArgument, "rule \(text.quoted) must be RESOURCE:SCOPE:ACTIONS, e.g. config:prod/order-service/:read,write")
        }
        let resourceText = String(trimmed[..<first])
        var resource: Resource?
        if resourceText != "*" {
            guard let known = Resource(rawValue: resourceText) else {
                throw CapstanError(
                    .invalidArgument,
                    "rule \(text.quoted): unknown resource \(resourceText.quoted); known: \(Resource.allCases.map(\.rawValue).joined(separator: ", ")) or *"
                )
            }
            resource = known
        }
        let scope = String(trimmed[trimmed.index(after: first)..<last])
        var actions = Set<Action>()
        for name in trimmed[trimmed.index(after: last)...].split(separator: ",", omittingEmptySubsequences: false) {
            let name = name.trimmingCharacters(in: .whitespaces)
            guard let action = Action(rawValue: name) else {
                throw CapstanError(
                    .invalidArgument,
                    "rule \(text.quoted): unknown action \(name.quoted); known: \(Action.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            actions.insert(action)
        }
        if let resource, resource.isUnscoped, !scope.isEmpty, scope != "*" {
            throw CapstanError(.invalidArgument, "rule \(text.quoted): \(resource.rawValue) takes no scope; write \(resource.rawValue)::ACTIONS")
        }
        if actions.contains(.readSecret), let resource, resource != .config {
            throw CapstanError(.invalidArgument, "rule \(text.quoted): read-secret applies to config only")
        }
        if resource == .job, !scope.isEmpty, scope != "*" {
            do { _ = try Selector(scope) } catch { throw CapstanError(.invalidArgument, "rule \(text.quoted): \(error.message)") }
        }
        guard scope.count <= 512, !scope.contains(where: { $0.isNewline }) else {
            throw CapstanError(.invalidArgument, "rule \(text.quoted): the scope must be one line of at most 512 characters")
        }
        self.init(resource: resource, scope: scope, actions: actions)
    }

    public var description: String {
        "\(resource?.rawValue ?? "*"):\(scope):\(actions.sorted().map(\.rawValue).joined(separator: ","))"
    }

    /// Whether the rule grants `action` on `resource`, whatever the scope.
    public func grants(_ action: Action, on resource: Resource) -> Bool {
        (self.resource == nil || self.resource == resource) && (actions.contains(action) || actions.contains(.admin))
    }

    /// Whether the rule's scope covers all of `target` (a name, a key, or a listing's prefix).
    /// A selector scope covers only the same selector (or a rule without scope covers all).
    public func covers(_ target: String, on resource: Resource) -> Bool {
        if scope.isEmpty { return true }
        if resource.scopeIsSelector || self.resource == nil && resource.isUnscoped { return scope == target }
        return target.hasPrefix(scope)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
