import CapstanCore
import Foundation

extension CapstanClient {
    public func putTemplate(_ name: String, _ spec: TemplateSpec) async throws -> TemplateInfo {
        let body = try Self.encoder.encode(spec)
        let answer = try await send(
            .PUT, "/v1/templates/\(Self.percentEncode(name))", headers: [("Content-Type", "application/json")], body: body)
        return try decode(TemplateInfo.self, answer)
    }

    /// Stores `spec` as the rollout's candidate definition of template `name`.
    public func putTemplateCandidate(_ name: String, _ spec: TemplateSpec, rollout: String) async throws -> RolloutInfo {
        let body = try Self.encoder.encode(spec)
        let answer = try await send(
            .PUT, "/v1/templates/\(Self.percentEncode(name))", query: [("rollout", rollout)], headers: [("Content-Type", "application/json")],
            body: body)
        return try decode(RolloutInfo.self, answer)
    }

    public func templates() async throws -> TemplateList {
        try decode(TemplateList.self, try await send(.GET, "/v1/templates"))
    }

    public func template(_ name: String) async throws -> TemplateInfo {
        try decode(TemplateInfo.self, try await send(.GET, "/v1/templates/\(Self.percentEncode(name))"))
    }

    public func templateStatus(_ name: String) async throws -> TemplateStatus {
        try decode(TemplateStatus.self, try await send(.GET, "/v1/templates/\(Self.percentEncode(name))/status"))
    }

    public func removeTemplate(_ name: String) async throws {
        _ = try await send(.DELETE, "/v1/templates/\(Self.percentEncode(name))")
    }
}
