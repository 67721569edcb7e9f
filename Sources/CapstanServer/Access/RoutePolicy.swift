import CapstanCore
import Synchronization

/// What a route needs of its caller. Each route declares it where it is registered
/// (`GuardedRouter`); a route without one is refused to everyone (deny by default).
enum RoutePolicy {
    enum Access: Sendable {
        /// Health, readiness, the server's own metrics and the OpenAPI document.
        case open
        /// Agents: the route checks the join token or the node's secret itself.
        case agent
        /// A valid token whose role grants `action` on `resource` for `target`.
        case caller(AccessRule.Resource, AccessRule.Action, Target)
        /// Any valid token.
        case anyCaller
        /// A console page: the caller of the session cookie; without a session, the login page.
        case page
        /// A console form: a session whose CSRF token the form carries; audited as a write.
        case form
        /// The console's login form: failed logins count against the address, and are audited.
        case login
    }

    enum Target: Sendable {
        /// All of the resource.
        case all
        /// Some part of it: the route narrows (filters a listing, checks a body's names).
        case some
        /// The config key in the path after this prefix.
        case key(after: String)
        /// A path parameter.
        case parameter(String)
        /// A query parameter holding a prefix (empty when absent).
        case query(String)
    }
}

/// Every route's access rule by `METHOD /path`, as the router names its routes: declared as the
/// routes are registered, read by the access middleware for each request.
final class RouteRules: Sendable {
    private let rules = Mutex<[String: RoutePolicy.Access]>([:])

    func declare(_ method: String, _ endpoint: String, _ access: RoutePolicy.Access) {
        rules.withLock { $0["\(method) \(endpoint)"] = access }
    }

    /// The rule of a routed request; nil for a route registered without one.
    func access(method: String, endpoint: String) -> RoutePolicy.Access? {
        rules.withLock { $0["\(method) \(endpoint)"] }
    }
}
