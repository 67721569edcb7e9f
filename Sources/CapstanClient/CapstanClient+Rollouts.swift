import CapstanCore
import Foundation

extension CapstanClient {
    /// Starts a rollout at its first step.
    public func startRollout(_ name: String, _ spec: RolloutSpec) async throws -> RolloutInfo {
        let body = try Self.encoder.encode(RolloutStart(name: name, spec: spec))
        return try decode(
            RolloutInfo.self, try await send(.POST, "/v1/rollouts", headers: [("Content-Type", "application/json")], body: body))
    }

    public func rollouts() async throws -> RolloutList {
        try decode(RolloutList.self, try await send(.GET, "/v1/rollouts"))
    }

    public func rollout(_ name: String) async throws -> RolloutInfo {
        try decode(RolloutInfo.self, try await send(.GET, "/v1/rollouts/\(Self.percentEncode(name))"))
    }

    public func rolloutStatus(_ name: String) async throws -> RolloutStatus {
        try decode(RolloutStatus.self, try await send(.GET, "/v1/rollouts/\(Self.percentEncode(name))/status"))
    }

    /// Runs a transition: `step`, `pause`, `resume`, `promote` or `abort`.
    public func rollout(_ name: String, _ action: String, reason: String? = nil) async throws -> RolloutInfo {
        try decode(
            RolloutInfo.self, try await send(.POST, "/v1/rollouts/\(Self.percentEncode(name))/\(action)", query: [("reason", reason)]))
    }

    /// Stores `content` as the rollout's candidate for `key`.
    public func putCandidate(_ key: String, rollout: String, content: Data, format: ConfigFormat? = nil, comment: String? = nil)
        async throws -> RolloutInfo
    {
        let answer = try await send(
            .PUT, "/v1/config/\(key)", query: [("rollout", rollout), ("format", format?.rawValue), ("comment", comment)],
            headers: [("Content-Type", "application/octet-stream")], body: content)
        return try decode(RolloutInfo.self, answer)
    }

    /// Stores the deletion of `key` as the rollout's candidate.
    public func deleteCandidate(_ key: String, rollout: String, comment: String? = nil) async throws -> RolloutInfo {
        try decode(RolloutInfo.self, try await send(.DELETE, "/v1/config/\(key)", query: [("rollout", rollout), ("comment", comment)]))
    }
}
