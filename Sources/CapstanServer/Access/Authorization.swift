import CapstanCore
import Hummingbird

/// What a caller may do: a route's rule held against the caller's role.
enum Authorization {
    typealias Context = CapstanRequestContext

    /// Throws `forbidden` unless the caller's role allows what `policy` asks of this request.
    static func check(_ policy: RoutePolicy.Access, caller: Caller, request: Request, context: Context) throws {
        guard case .caller(let resource, let action, let target) = policy else { return }
        let scope = try scope(target, request: request, context: context)
        let allowed = scope.map { caller.role.allows(action, on: resource, target: $0) } ?? caller.role.allowsSome(action, on: resource)
        if !allowed { throw forbidden(caller, action, resource, target: scope) }
    }

    static func forbidden(_ caller: Caller, _ action: AccessRule.Action, _ resource: AccessRule.Resource, target: String?) -> CapstanError {
        let what = target.map { $0.isEmpty ? "all of \(resource.rawValue)" : "\(resource.rawValue) \($0.quoted)" } ?? resource.rawValue
        return CapstanError(.forbidden, "role \(caller.role.name.quoted) of token \(caller.tokenID) may not \(action.rawValue) \(what)")
    }

    /// The part of the resource a request touches; nil when the route narrows it itself.
    static func scope(_ target: RoutePolicy.Target, request: Request, context: Context) throws -> String? {
        switch target {
        case .all: return ""
        case .some: return nil
        case .key(let prefix): return try HTTPHelpers.key(request, after: prefix).description
        case .parameter(let name): return try context.parameters.require(name)
        case .query(let name): return HTTPHelpers.string(request, name) ?? ""
        }
    }
}
