import CapstanCore
import CapstanStore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The limits the server applies per client address and per token.
public struct AccessLimits: Sendable {
    /// Failed authentications per client address (guessing tokens or node secrets).
    public var authFailures = RateLimiter.Limit(rate: 1, burst: 10)
    /// Enrollments per client address.
    public var enrollments = RateLimiter.Limit(rate: 5, burst: 50)
    /// API requests per token.
    public var requests = RateLimiter.Limit(rate: 500, burst: 1000)

    public init() {}
}

/// Authentication, authorization and audit for every routed request.
///
/// Per the route's rule (declared with the route, `RouteRules`): checks the bearer token (401), the role (403), the
/// token's request rate (429), then lets the request through; every mutating request and every
/// denied one is appended to the audit log once answered.
struct AccessMiddleware: RouterMiddleware {
    typealias Context = CapstanRequestContext

    let rules: RouteRules
    let access: AccessControl
    let audit: AuditLog
    let store: any KeyValueStore
    let authFailures: RateLimiter
    let enrollments: RateLimiter
    let requests: RateLimiter
    /// The largest body hashed for the audit log; bigger ones are refused by their routes anyway.
    let maxBody: Int

    init(rules: RouteRules, access: AccessControl, audit: AuditLog, store: any KeyValueStore, limits: AccessLimits, maxBody: Int) {
        self.rules = rules
        self.access = access
        self.audit = audit
        self.store = store
        self.authFailures = RateLimiter(limits.authFailures)
        self.enrollments = RateLimiter(limits.enrollments)
        self.requests = RateLimiter(limits.requests)
        self.maxBody = maxBody
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let endpoint = context.endpointPath, endpoint != "NotFound" else { return try await next(request, context) }
        let method = request.method.rawValue
        let address = context.clientAddress
        guard let policy = rules.access(method: method, endpoint: endpoint) else {
            let problem = Problem(
                title: "Forbidden", status: 403, detail: "\(method) \(endpoint) has no access rule", code: CapstanError.Code.forbidden.rawValue)
            return ProblemMapping.response(for: problem)
        }
        switch policy {
        case .open:
            return try await next(request, context)
        case .agent:
            return try await agentRoute(request, context: context, next: next, address: address)
        case .anyCaller, .caller:
            break
        }
        var draft = AuditLog.Draft(
            actorKind: .anonymous, actorID: "", actorDescription: "", action: Self.action(policy, method: method), method: method,
            resource: request.uri.description, client: address, status: 0, allowed: false)
        // Failed authentications are limited per address; a valid token passes whatever others
        // behind the same address (a NAT, a proxy) got wrong.
        guard let token = Self.bearer(request.headers) else {
            if let wait = authFailures.take(address) { return Self.tooManyRequests(wait, "too many failed authentications from \(address)") }
            return await deny(&draft, CapstanError(.unauthorized, "this request needs a token: pass --token, set CAPSTAN_TOKEN or run capstan login"))
        }
        let caller: Caller
        do {
            caller = try await access.authenticate(token)
        } catch let error as CapstanError where error.code == .unauthorized {
            if let wait = authFailures.take(address) { return Self.tooManyRequests(wait, "too many failed authentications from \(address)") }
            return await deny(&draft, error)
        }
        draft.actorKind = .token
        draft.actorID = caller.tokenID
        draft.actorDescription = caller.description
        if let wait = requests.take(caller.tokenID) {
            return Self.tooManyRequests(wait, "token \(caller.tokenID) is over its request rate")
        }
        if case .caller(let resource, let action, let target) = policy {
            let scope = try Self.scope(target, request: request, context: context)
            let allowed = scope.map { caller.role.allows(action, on: resource, target: $0) } ?? caller.role.allowsSome(action, on: resource)
            if !allowed {
                return await deny(&draft, Self.forbidden(caller, action, resource, target: scope))
            }
        }
        var context = context
        context.caller = caller
        context.callerLifetime = CallerLifetime(access: access, caller: caller)
        guard Self.mutating(request.method) else { return try await next(request, context) }
        return try await audited(request, context: context, draft: draft, next: next)
    }

    /// Enrollment is rate limited per address and audited; a refused agent connection is audited.
    private func agentRoute(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response, address: String
    ) async throws -> Response {
        let method = request.method.rawValue
        var draft = AuditLog.Draft(
            actorKind: .anonymous, actorID: request.headers[.capstanNode] ?? "", actorDescription: "",
            action: "agent." + (request.uri.path.split(separator: "/").last.map(String.init) ?? "connect"), method: method, resource: request.uri.path, client: address,
            status: 0, allowed: true)
        if Self.mutating(request.method), let wait = enrollments.take(address) {
            return Self.tooManyRequests(wait, "too many enrollments from \(address)")
        }
        var request = request
        do {
            if Self.mutating(request.method) {
                let body = try await Self.collectBody(&request, upTo: NodeRoutes.maxBody)
                if body.readableBytes > 0 {
                    draft.contentHash = Self.sha256(body)
                    // The node names itself in the enrollment's body.
                    if let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
                        let name = object["name"] as? String
                    {
                        draft.actorID = String(name.prefix(253))
                    }
                }
            }
            let response = try await next(request, context)
            if Self.mutating(request.method) {
                draft.status = Int(response.status.code)
                draft.actorKind = .node
                await audit.append(draft)
            }
            return response
        } catch {
            let status = ProblemMapping.problem(for: error).status
            let refused = status == 401 || status == 403
            if refused { draft.allowed = false }
            if refused || Self.mutating(request.method) {
                draft.status = status
                await audit.append(draft)
            }
            if refused, let wait = authFailures.take(address) {
                return Self.tooManyRequests(wait, "too many failed authentications from \(address)")
            }
            throw error
        }
    }

    /// Runs a mutating request and appends its entry: body hash, revisions before and after, status.
    private func audited(
        _ request: Request, context: Context, draft: AuditLog.Draft, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var draft = draft
        draft.allowed = true
        var request = request
        do {
            if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxBody {
                // Left for the route to refuse with its own message; nothing was hashed.
            } else if request.method == .put, request.uri.path.hasPrefix("/v1/config/"), (try? ConfigRoutes.secretFlag(request)) == true {
                // A secret's hash would let a guess be checked offline: not recorded.
            } else {
                let body = try await Self.collectBody(&request, upTo: maxBody)
                if body.readableBytes > 0 { draft.contentHash = Self.sha256(body) }
            }
            draft.revisionBefore = try? await store.status().revision
            let response = try await next(request, context)
            draft.status = Int(response.status.code)
            draft.revisionAfter = try? await store.status().revision
            await audit.append(draft)
            return response
        } catch {
            draft.status = ProblemMapping.problem(for: error).status
            draft.revisionAfter = try? await store.status().revision
            await audit.append(draft)
            throw error
        }
    }

    /// Reads the whole body and puts it back on the request, where the route reads it again.
    ///
    /// A body that cannot be read whole ends the request here, with the reason: the body stream
    /// can be read only once, so a route after a failed read would see an empty body (and a
    /// debug build traps). Too large is 413, whatever the framing; a client that leaves mid-body
    /// gets nothing and nothing is written.
    static func collectBody(_ request: inout Request, upTo limit: Int) async throws -> ByteBuffer {
        do {
            return try await request.collectBody(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw CapstanError(.payloadTooLarge, "the request body is larger than the limit of \(ByteSize.format(limit))")
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as HTTPError where error.status == .requestTimeout {
            // Cut off at the body timeout (the client was answered 408): audited as that.
            throw error
        } catch {
            // The client left or broke the framing mid-body: refused, and so audited.
            throw CapstanError(.invalidArgument, "the request body ended before it was whole: \(error)")
        }
    }

    private func deny(_ draft: inout AuditLog.Draft, _ error: CapstanError) async -> Response {
        let problem = ProblemMapping.problem(for: error)
        draft.status = problem.status
        draft.allowed = false
        await audit.append(draft)
        var headers: HTTPFields = [:]
        if problem.status == 401 { headers[.wwwAuthenticate] = "Bearer realm=\"capstan\"" }
        return ProblemMapping.response(for: problem, headers: headers)
    }

    static func tooManyRequests(_ wait: Duration, _ detail: String) -> Response {
        let seconds = RateLimiter.retryAfterSeconds(wait)
        let problem = Problem(
            title: "Too Many Requests", status: 429, detail: "\(detail); retry after \(seconds) s", code: CapstanError.Code.rateLimited.rawValue)
        return ProblemMapping.response(for: problem, headers: [.retryAfter: String(seconds)])
    }

    static func forbidden(_ caller: Caller, _ action: AccessRule.Action, _ resource: AccessRule.Resource, target: String?) -> CapstanError {
        let what = target.map { $0.isEmpty ? "all of \(resource.rawValue)" : "\(resource.rawValue) \($0.quoted)" } ?? resource.rawValue
        return CapstanError(.forbidden, "role \(caller.role.name.quoted) of token \(caller.tokenID) may not \(action.rawValue) \(what)")
    }

    /// The bearer token of an `Authorization` header.
    static func bearer(_ headers: HTTPFields) -> String? {
        guard let value = headers[.authorization] else { return nil }
        let utf8 = value.utf8
        // "Bearer " in any case, then the token with surrounding blanks dropped.
        guard utf8.count > 7, utf8.prefix(6).elementsEqual("bearer".utf8, by: { $0 | 0x20 == $1 }),
            utf8[utf8.index(utf8.startIndex, offsetBy: 6)] == UInt8(ascii: " ")
        else { return nil }
        let token = value.utf8.dropFirst(7).drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        let end = token.lastIndex { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }
        guard let end else { return nil }
        return String(Substring(token[...end]))
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

    static func action(_ policy: RoutePolicy.Access, method: String) -> String {
        switch policy {
        case .caller(let resource, let action, _): "\(resource.rawValue).\(action.rawValue)"
        case .anyCaller: "token.whoami"
        case .open, .agent: method.lowercased()
        }
    }

    static func sha256(_ body: ByteBuffer) -> String {
        ConfigRecord.hex(SHA256.hash(data: Data(buffer: body)))
    }

    static func mutating(_ method: HTTPRequest.Method) -> Bool {
        ![.get, .head, .options].contains(method)
    }
}
