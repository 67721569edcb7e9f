import CapstanCore
import AsyncHTTPClient
import CapstanTLS
import Foundation
import NIOCore
import NIOSSL

extension CapstanClient {
    /// The token this client sends, and its role.
    public func whoami() async throws -> CallerInfo {
        try decode(CallerInfo.self, try await send(.GET, "/v1/whoami"))
    }

    /// Creates a token; the answer holds its secret, shown this once.
    public func createToken(_ spec: TokenSpec) async throws -> CreatedToken {
        let answer = try await send(.POST, "/v1/tokens", headers: [("Content-Type", "application/json")], body: try Self.encoder.encode(spec))
        return try decode(CreatedToken.self, answer)
    }

    public func tokens() async throws -> [TokenInfo] {
        try decode([TokenInfo].self, try await send(.GET, "/v1/tokens"))
    }

    public func revokeToken(_ id: String) async throws {
        _ = try await send(.DELETE, "/v1/tokens/\(Self.percentEncode(id))")
    }

    public func putRole(_ name: String, _ spec: RoleSpec) async throws -> Role {
        let answer = try await send(
            .PUT, "/v1/roles/\(Self.percentEncode(name))", headers: [("Content-Type", "application/json")], body: try Self.encoder.encode(spec))
        return try decode(Role.self, answer)
    }

    public func roles() async throws -> [Role] {
        try decode([Role].self, try await send(.GET, "/v1/roles"))
    }

    public func role(_ name: String) async throws -> Role {
        try decode(Role.self, try await send(.GET, "/v1/roles/\(Self.percentEncode(name))"))
    }

    public func removeRole(_ name: String) async throws {
        _ = try await send(.DELETE, "/v1/roles/\(Self.percentEncode(name))")
    }

    /// Audit entries, newest first.
    /// - Parameter since: an ISO 8601 time or a duration back from now (`1h`).
    public func audit(since: String? = nil, actor: String? = nil, resource: String? = nil, limit: Int? = nil) async throws -> AuditList {
        let query: [(String, String?)] = [("since", since), ("actor", actor), ("resource", resource), ("limit", limit.map(String.init))]
        return try decode(AuditList.self, try await send(.GET, "/v1/audit", query: query))
    }

    public func verifyAudit() async throws -> AuditVerification {
        try decode(AuditVerification.self, try await send(.GET, "/v1/audit/verify", timeout: .minutes(10)))
    }
}

extension CapstanClient {
    /// The CA certificate the server hands out (`GET /v1/agent/ca`), fetched without verifying
    /// the server and accepted only if its fingerprint is `pinned` (`sha256:HEX`).
    public func fetchCA(pinned: String) async throws -> String {
        var unverified = TLSConfiguration.makeClientConfiguration()
        unverified.certificateVerification = .none
        var request = HTTPClientRequest(url: url(servers[0], "/v1/agent/ca"))
        request.tlsConfiguration = unverified
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await http.execute(request, timeout: timeout)
            body = try await response.body.collect(upTo: 1 << 20)
        } catch {
            throw ClientError("cannot reach Capstan at \(servers[0]): \(Self.describe(error))")
        }
        guard response.status == .ok else { throw Self.error(status: response.status, body: body) }
        let pem = String(buffer: body)
        let offered: String
        do { offered = try CertificateFacts(pem: pem).fingerprint } catch { throw ClientError("the server's CA certificate cannot be read: \(error)") }
        guard offered == pinned else {
            throw ClientError("the server's CA has fingerprint \(offered), not \(pinned): not trusted (another server, or someone in between)")
        }
        return pem
    }
}
