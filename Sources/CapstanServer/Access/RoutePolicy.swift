import CapstanCore

/// What each route needs, by `METHOD /path` as the router names its routes. A route missing here
/// is refused to everyone (deny by default); a test walks the router to keep the table whole.
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

    static let table: [String: Access] = [
        "GET /healthz": .open,
        "GET /readyz": .open,
        "GET /metrics": .open,
        "GET /v1/openapi.yaml": .open,

        "GET /v1/namespaces": .caller(.namespace, .read, .some),
        "POST /v1/namespaces": .caller(.namespace, .write, .some),
        "GET /v1/namespaces/{namespace}": .caller(.namespace, .read, .parameter("namespace")),
        "DELETE /v1/namespaces/{namespace}": .caller(.namespace, .delete, .parameter("namespace")),

        "PUT /v1/config/{namespace}/**": .caller(.config, .write, .key(after: "/v1/config/")),
        "GET /v1/config/{namespace}/**": .caller(.config, .read, .key(after: "/v1/config/")),
        "DELETE /v1/config/{namespace}/**": .caller(.config, .delete, .key(after: "/v1/config/")),
        "GET /v1/configs": .caller(.config, .read, .query("prefix")),
        "GET /v1/history/{namespace}/**": .caller(.config, .read, .key(after: "/v1/history/")),
        "GET /v1/diff/{namespace}/**": .caller(.config, .read, .key(after: "/v1/diff/")),
        "POST /v1/rollback/{namespace}/**": .caller(.config, .write, .key(after: "/v1/rollback/")),
        "GET /v1/watch": .caller(.config, .read, .query("prefix")),

        // A rollout is as visible and as movable as every key and template it holds (the route
        // checks each); starting one needs a config write right somewhere.
        "GET /v1/rollouts": .caller(.config, .read, .some),
        "POST /v1/rollouts": .caller(.config, .write, .some),
        "GET /v1/rollouts/{name}": .caller(.config, .read, .some),
        "GET /v1/rollouts/{name}/status": .caller(.config, .read, .some),
        "POST /v1/rollouts/{name}/step": .caller(.config, .write, .some),
        "POST /v1/rollouts/{name}/pause": .caller(.config, .write, .some),
        "POST /v1/rollouts/{name}/resume": .caller(.config, .write, .some),
        "POST /v1/rollouts/{name}/promote": .caller(.config, .write, .some),
        "POST /v1/rollouts/{name}/abort": .caller(.config, .write, .some),

        "GET /v1/nodes": .caller(.node, .read, .some),
        "GET /v1/nodes/metrics": .caller(.node, .read, .all),
        "GET /v1/nodes/{name}/metrics": .caller(.node, .read, .parameter("name")),
        "GET /v1/nodes/{name}": .caller(.node, .read, .parameter("name")),
        "POST /v1/nodes/{name}/labels": .caller(.node, .write, .parameter("name")),
        "DELETE /v1/nodes/{name}": .caller(.node, .delete, .parameter("name")),
        "POST /v1/agent/enroll": .agent,
        "GET /v1/agent/connect": .agent,
        "POST /v1/agent/renew": .agent,
        "GET /v1/agent/ca": .open,

        "GET /v1/templates": .caller(.template, .read, .some),
        "PUT /v1/templates/{name}": .caller(.template, .write, .parameter("name")),
        "GET /v1/templates/{name}": .caller(.template, .read, .parameter("name")),
        "GET /v1/templates/{name}/status": .caller(.template, .read, .parameter("name")),
        "DELETE /v1/templates/{name}": .caller(.template, .delete, .parameter("name")),

        // A job's selector is checked against the caller's run rules by the route.
        "POST /v1/jobs": .caller(.job, .run, .some),
        "GET /v1/jobs": .caller(.job, .read, .some),
        "GET /v1/jobs/{id}": .caller(.job, .read, .some),
        "POST /v1/jobs/{id}/cancel": .caller(.job, .run, .some),
        "GET /v1/jobs/{id}/events": .caller(.job, .read, .some),

        "GET /v1/schedules": .caller(.schedule, .read, .some),
        "PUT /v1/schedules/{name}": .caller(.schedule, .write, .parameter("name")),
        "GET /v1/schedules/{name}": .caller(.schedule, .read, .parameter("name")),
        "DELETE /v1/schedules/{name}": .caller(.schedule, .delete, .parameter("name")),

        "GET /v1/checks": .caller(.check, .read, .some),
        "PUT /v1/checks/{name}": .caller(.check, .write, .parameter("name")),
        "GET /v1/checks/{name}": .caller(.check, .read, .parameter("name")),
        "DELETE /v1/checks/{name}": .caller(.check, .delete, .parameter("name")),

        "GET /v1/whoami": .anyCaller,
        "GET /v1/tokens": .caller(.token, .read, .all),
        "POST /v1/tokens": .caller(.token, .write, .all),
        "DELETE /v1/tokens/{id}": .caller(.token, .delete, .all),
        "GET /v1/roles": .caller(.role, .read, .all),
        "GET /v1/roles/{name}": .caller(.role, .read, .all),
        "PUT /v1/roles/{name}": .caller(.role, .write, .all),
        "DELETE /v1/roles/{name}": .caller(.role, .delete, .all),
        "GET /v1/audit": .caller(.audit, .read, .all),
        "GET /v1/audit/verify": .caller(.audit, .read, .all),
    ]

    /// The table's entry for a routed request.
    static func access(method: String, endpoint: String) -> Access? {
        table["\(method) \(endpoint)"]
    }
}
