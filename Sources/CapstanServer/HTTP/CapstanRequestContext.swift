import CapstanCore
import Hummingbird
import NIOCore

/// The request context of every route: who the request acts as and where it came from.
public struct CapstanRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// Set by `AccessMiddleware` once the bearer token checks out; nil on open and agent routes.
    public var caller: Caller?
    /// Set with `caller`: how long the request may go on acting as it (streams end with it).
    var callerLifetime: CallerLifetime?
    /// The SHA-256 (hex) of the request's body as the audit trail read it, for a route that
    /// stores that body and records its hash too; nil when the body was not hashed.
    var bodySHA256: String?
    /// On console routes: the session's CSRF token, which its pages put in their forms.
    var consoleCSRF: String?
    /// The connection, for the client certificate an agent presents.
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
        self.channel = source.channel
    }

    /// The client address as the audit log and rate limits key it.
    var clientAddress: String {
        remoteAddress?.ipAddress ?? "local"
    }

    /// The caller; `unauthorized` on a route that let the request through without one (fails closed).
    func requireCaller() throws -> Caller {
        guard let caller else { throw CapstanError(.unauthorized, "this request needs a token") }
        return caller
    }

    /// Runs `work` (a long poll's wait) while the caller's token works; throws `unauthorized` as
    /// soon as it is revoked or expires.
    func whileTokenWorks<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) async throws -> T {
        guard let callerLifetime else { return try await work() }
        return try await callerLifetime.during(work)
    }

    /// Throws `forbidden` unless the caller may do `action` on all of `target`.
    func authorize(_ action: AccessRule.Action, on resource: AccessRule.Resource, target: String) throws {
        let caller = try requireCaller()
        guard caller.role.allows(action, on: resource, target: target) else {
            throw Authorization.forbidden(caller, action, resource, target: target)
        }
    }

    /// Whether the caller may do `action` on `target`: for filtering listings.
    func may(_ action: AccessRule.Action, on resource: AccessRule.Resource, target: String) -> Bool {
        caller?.role.allows(action, on: resource, target: target) ?? false
    }

    /// The author of a write: the `X-Capstan-Author` the client names, with the token that made it.
    func author(_ request: Request) -> String {
        let given = request.headers[.capstanAuthor].map { String($0.prefix(128)) } ?? ""
        guard let caller else { return given.isEmpty ? "anonymous" : given }
        return given.isEmpty ? caller.name : "\(given) (token \(caller.tokenID))"
    }
}
