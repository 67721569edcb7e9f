import CapstanCore
import Foundation

extension CapstanClient {
    /// Nodes the selector picks (all when empty), by name.
    public func nodes(selector: String = "") async throws -> NodeList {
        let query = selector.isEmpty ? "" : "?selector=\(Self.percentEncode(selector))"
        return try decode(NodeList.self, try await send(.GET, "/v1/nodes\(query)"))
    }

    public func node(_ name: String) async throws -> NodeInfo {
        try decode(NodeInfo.self, try await send(.GET, "/v1/nodes/\(Self.percentEncode(name))"))
    }

    /// Sets and removes labels on the server (they win over the agent's own).
    public func labelNode(_ name: String, _ change: NodeLabelChange) async throws -> NodeInfo {
        let body = try Self.encoder.encode(change)
        let answer = try await send(
            .POST, "/v1/nodes/\(Self.percentEncode(name))/labels", headers: [("Content-Type", "application/json")], body: body)
        return try decode(NodeInfo.self, answer)
    }

    /// Removes a node: its identity stops working and its agent is disconnected.
    public func removeNode(_ name: String) async throws {
        _ = try await send(.DELETE, "/v1/nodes/\(Self.percentEncode(name))")
    }

    /// Every node's latest host metrics (of the nodes connected to the replica answering).
    public func nodeTop() async throws -> NodeTop {
        try decode(NodeTop.self, try await send(.GET, "/v1/nodes/metrics", headers: [("Accept", "application/json")]))
    }

    /// A node's latest host metrics and the last hour of them.
    public func nodeMetrics(_ name: String) async throws -> NodeMetricsInfo {
        try decode(NodeMetricsInfo.self, try await send(.GET, "/v1/nodes/\(Self.percentEncode(name))/metrics"))
    }
}

extension CapstanClient {
    public func putCheck(_ name: String, _ spec: CheckSpec) async throws -> CheckInfo {
        let body = try Self.encoder.encode(spec)
        let answer = try await send(.PUT, "/v1/checks/\(Self.percentEncode(name))", headers: [("Content-Type", "application/json")], body: body)
        return try decode(CheckInfo.self, answer)
    }

    public func checks() async throws -> CheckList {
        try decode(CheckList.self, try await send(.GET, "/v1/checks"))
    }

    /// The check with the status of every node it picks.
    public func check(_ name: String) async throws -> CheckInfo {
        try decode(CheckInfo.self, try await send(.GET, "/v1/checks/\(Self.percentEncode(name))"))
    }

    public func removeCheck(_ name: String) async throws {
        _ = try await send(.DELETE, "/v1/checks/\(Self.percentEncode(name))")
    }
}
