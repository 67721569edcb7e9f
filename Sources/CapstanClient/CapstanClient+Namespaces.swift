import CapstanCore
import Foundation

extension CapstanClient {
    public func createNamespace(_ name: String, description: String? = nil) async throws -> NamespaceInfo {
        let body = try Self.encoder.encode(CreateNamespaceRequest(name: name, description: description))
        let answer = try await send(.POST, "/v1/namespaces", headers: [("Content-Type", "application/json")], body: body)
        return try decode(NamespaceInfo.self, answer)
    }

    public func namespaces() async throws -> NamespaceList {
        try decode(NamespaceList.self, try await send(.GET, "/v1/namespaces"))
    }

    public func namespace(_ name: String) async throws -> NamespaceInfo {
        try decode(NamespaceInfo.self, try await send(.GET, "/v1/namespaces/\(Self.percentEncode(name))"))
    }

    public func deleteNamespace(_ name: String) async throws {
        _ = try await send(.DELETE, "/v1/namespaces/\(Self.percentEncode(name))")
    }
}
