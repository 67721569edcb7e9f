import CapstanCore
import CapstanStore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The audit entries of routed requests: every mutating request and every denied one, appended
/// once answered.
struct AuditTrail: Sendable {
    typealias Context = CapstanRequestContext

    let audit: AuditLog
    let store: any KeyValueStore
    /// The largest body hashed for the audit log; bigger ones are refused by their routes anyway.
    let maxBody: Int

    /// A caller's request, before it is known who calls.
    func draft(_ request: Request, policy: RoutePolicy.Access, client: String) -> AuditLog.Draft {
        let method = request.method.rawValue
        return AuditLog.Draft(
            actorKind: .anonymous, actorID: "", actorDescription: "", action: Self.action(policy, method: method), method: method,
            resource: request.uri.description, client: client, status: 0, allowed: false)
    }

    /// Records the refusal and answers it.
    func deny(_ draft: inout AuditLog.Draft, _ error: CapstanError) async -> Response {
        let problem = ProblemMapping.problem(for: error)
        draft.status = problem.status
        draft.allowed = false
        await audit.append(draft)
        var headers: HTTPFields = [:]
        if problem.status == 401 { headers[.wwwAuthenticate] = "Bearer realm=\"capstan\"" }
        return ProblemMapping.response(for: problem, headers: headers)
    }

    /// Runs a mutating request and appends its entry: body hash, revisions before and after, status.
    func audited(
        _ request: Request, context: Context, draft: AuditLog.Draft, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var draft = draft
        draft.allowed = true
        var request = request
        var context = context
        do {
            if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxBody {
                // Left for the route to refuse with its own message; nothing was hashed.
            } else if request.method == .put, request.uri.path.hasPrefix("/v1/config/"), (try? ConfigRoutes.secretFlag(request)) == true {
                // A secret's hash would let a guess be checked offline: not recorded.
            } else {
                let body = try await Self.collectBody(&request, upTo: maxBody)
                if body.readableBytes > 0 {
                    draft.contentHash = Self.sha256(body)
                    context.bodySHA256 = draft.contentHash
                }
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

    /// Runs an agent's request (enrollment, connection, renewal): a mutating one is recorded with
    /// the node it names, a refused one (401, 403) with its status.
    func agentRequest(
        _ request: Request, context: Context, client: String, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let mutating = Self.mutating(request.method)
        var draft = AuditLog.Draft(
            actorKind: .anonymous, actorID: request.headers[.capstanNode] ?? "", actorDescription: "",
            action: "agent." + (request.uri.path.split(separator: "/").last.map(String.init) ?? "connect"), method: request.method.rawValue,
            resource: request.uri.path, client: client, status: 0, allowed: true)
        var request = request
        do {
            if mutating {
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
            if mutating {
                draft.status = Int(response.status.code)
                draft.actorKind = .node
                await audit.append(draft)
            }
            return response
        } catch {
            let status = ProblemMapping.problem(for: error).status
            let refused = status == 401 || status == 403
            if refused { draft.allowed = false }
            if refused || mutating {
                draft.status = status
                await audit.append(draft)
            }
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

    /// The entry's action: `config.write`, or the method for routes without a caller.
    static func action(_ policy: RoutePolicy.Access, method: String) -> String {
        switch policy {
        case .caller(let resource, let action, _): "\(resource.rawValue).\(action.rawValue)"
        case .anyCaller: "token.whoami"
        case .page, .form: "console.\(method.lowercased())"
        case .login: "console.login"
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
