import CapstanCore
import CapstanStore
import Hummingbird

/// Access to every routed request, in order: the route's rule (declared with the route, deny by
/// default), who calls (`Authentication`, 401), the limits (`RequestLimits`, 429), what the
/// caller may do (`Authorization`, 403), and the audit entry of every mutating or denied request
/// (`AuditTrail`).
struct AccessMiddleware: RouterMiddleware {
    typealias Context = CapstanRequestContext

    let rules: RouteRules
    let authentication: Authentication
    let limits: RequestLimits
    let trail: AuditTrail

    init(
        rules: RouteRules, access: AccessControl, sessions: ConsoleSessions, audit: AuditLog, store: any KeyValueStore, limits: AccessLimits,
        maxBody: Int
    ) {
        self.rules = rules
        self.authentication = Authentication(access: access, sessions: sessions)
        self.limits = RequestLimits(limits)
        self.trail = AuditTrail(audit: audit, store: store, maxBody: maxBody)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let endpoint = context.endpointPath, endpoint != "NotFound" else { return try await next(request, context) }
        let method = request.method.rawValue
        guard let policy = rules.access(method: method, endpoint: endpoint) else {
            let problem = Problem(
                title: "Forbidden", status: 403, detail: "\(method) \(endpoint) has no access rule", code: CapstanError.Code.forbidden.rawValue)
            return ProblemMapping.response(for: problem)
        }
        switch policy {
        case .open:
            return try await next(request, context)
        case .agent:
            return try await agent(request, context: context, next: next)
        case .anyCaller, .caller:
            return try await caller(request, context: context, policy: policy, next: next)
        case .page, .form:
            return try await console(request, context: context, policy: policy, next: next)
        case .login:
            return try await login(request, context: context, next: next)
        }
    }

    /// A request that needs a token.
    private func caller(
        _ request: Request, context: Context, policy: RoutePolicy.Access, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let address = context.clientAddress
        var draft = trail.draft(request, policy: policy, client: address)
        let caller: Caller
        do {
            caller = try await authentication.caller(of: request)
        } catch let error as CapstanError where error.code == .unauthorized {
            if let refusal = limits.afterAuthFailure(from: address) { return refusal }
            return await trail.deny(&draft, error)
        }
        draft.actorKind = .token
        draft.actorID = caller.tokenID
        draft.actorDescription = caller.description
        if let refusal = limits.beforeRequest(of: caller.tokenID) { return refusal }
        do {
            try Authorization.check(policy, caller: caller, request: request, context: context)
        } catch let error as CapstanError where error.code == .forbidden {
            return await trail.deny(&draft, error)
        }
        var context = context
        context.caller = caller
        context.callerLifetime = CallerLifetime(access: authentication.access, caller: caller)
        guard AuditTrail.mutating(request.method) else { return try await next(request, context) }
        return try await trail.audited(request, context: context, draft: draft, next: next)
    }

    /// A console page or form: the session cookie's caller, and for a form its CSRF token.
    private func console(
        _ request: Request, context: Context, policy: RoutePolicy.Access, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var draft = trail.draft(request, policy: policy, client: context.clientAddress)
        guard let session = try await authentication.session(of: request) else {
            if case .page = policy { return ConsoleView.redirect(to: "/ui/login") }
            return await trail.deny(&draft, CapstanError(.unauthorized, "the console session ended: log in again"))
        }
        let caller = session.caller
        draft.actorKind = .token
        draft.actorID = caller.tokenID
        draft.actorDescription = caller.description
        if let refusal = limits.beforeRequest(of: caller.tokenID) { return refusal }
        var context = context
        context.caller = caller
        context.callerLifetime = CallerLifetime(access: authentication.access, caller: caller)
        context.consoleCSRF = session.record.csrf
        guard case .form = policy else { return try await next(request, context) }
        var request = request
        let fields = FormFields(try await AuditTrail.collectBody(&request, upTo: ConsoleRoutes.maxForm))
        guard let given = fields["csrf"], NodeRegistry.constantTimeEqual(given, session.record.csrf) else {
            return await trail.deny(&draft, CapstanError(.forbidden, "the form's CSRF token is missing or wrong: reload the page and send it again"))
        }
        return try await trail.audited(request, context: context, draft: draft, next: next)
    }

    /// The console's login: every attempt is audited, and a failed one counts against the address.
    private func login(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let address = context.clientAddress
        let response = try await next(request, context)
        var draft = trail.draft(request, policy: .login, client: address)
        draft.status = Int(response.status.code)
        draft.allowed = response.status == .seeOther
        await trail.audit.append(draft)
        if response.status == .unauthorized, let refusal = limits.afterAuthFailure(from: address) { return refusal }
        return response
    }

    /// An agent's request: enrollments are limited per address, and a refused agent counts as a
    /// failed authentication of its address.
    private func agent(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let address = context.clientAddress
        if AuditTrail.mutating(request.method), let refusal = limits.beforeEnrollment(from: address) { return refusal }
        do {
            return try await trail.agentRequest(request, context: context, client: address, next: next)
        } catch {
            let status = ProblemMapping.problem(for: error).status
            if status == 401 || status == 403, let refusal = limits.afterAuthFailure(from: address) { return refusal }
            throw error
        }
    }
}
