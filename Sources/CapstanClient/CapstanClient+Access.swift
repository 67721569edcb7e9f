import CapstanCore
import Foundation

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
