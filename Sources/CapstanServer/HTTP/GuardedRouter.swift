import HTTPTypes
import Hummingbird

/// Registers routes together with their access rules, so that a route's rule is written where
/// the route is: `nodes.get("{name}", access: .caller(.node, .read, .parameter("name"))) { … }`.
struct GuardedRouter {
    typealias Context = CapstanRequestContext

    let rules: RouteRules
    private let methods: any RouterMethods<Context>
    /// The path of this group from the root, as the router writes it (`/v1/nodes`).
    private let prefix: String

    init(_ router: Router<Context>, rules: RouteRules) {
        self.init(methods: router, prefix: "", rules: rules)
    }

    private init(methods: any RouterMethods<Context>, prefix: String, rules: RouteRules) {
        self.methods = methods
        self.prefix = prefix
        self.rules = rules
    }

    /// Routes under `path`.
    func group(_ path: String) -> GuardedRouter {
        GuardedRouter(methods: methods.group(RouterPath(path)), prefix: Self.join(prefix, path), rules: rules)
    }

    @discardableResult
    func on(
        _ method: HTTPRequest.Method, _ path: String, access: RoutePolicy.Access,
        use handler: @escaping @Sendable (Request, Context) async throws -> some ResponseGenerator
    ) -> GuardedRouter {
        rules.declare(method.rawValue, Self.join(prefix, path), access)
        methods.on(RouterPath(path), method: method, use: handler)
        return self
    }

    @discardableResult
    func get(
        _ path: String = "", access: RoutePolicy.Access,
        use handler: @escaping @Sendable (Request, Context) async throws -> some ResponseGenerator
    ) -> GuardedRouter {
        on(.get, path, access: access, use: handler)
    }

    @discardableResult
    func put(
        _ path: String = "", access: RoutePolicy.Access,
        use handler: @escaping @Sendable (Request, Context) async throws -> some ResponseGenerator
    ) -> GuardedRouter {
        on(.put, path, access: access, use: handler)
    }

    @discardableResult
    func post(
        _ path: String = "", access: RoutePolicy.Access,
        use handler: @escaping @Sendable (Request, Context) async throws -> some ResponseGenerator
    ) -> GuardedRouter {
        on(.post, path, access: access, use: handler)
    }

    @discardableResult
    func delete(
        _ path: String = "", access: RoutePolicy.Access,
        use handler: @escaping @Sendable (Request, Context) async throws -> some ResponseGenerator
    ) -> GuardedRouter {
        on(.delete, path, access: access, use: handler)
    }

    /// `/a/b` from `/a` and `b`, normalized as the router names endpoints.
    static func join(_ prefix: String, _ path: String) -> String {
        RouterPath(prefix + "/" + path).description
    }
}
