import CapstanCore
import Foundation

extension CapstanClient {
    /// A config's content with the version it belongs to.
    public struct Content: Sendable {
        public var key: String
        public var content: Data
        public var revision: Int64
        public var version: Int64
        public var format: ConfigFormat
        /// Store revision to pass as `index` to wait for the next change.
        public var index: Int64
        /// The rollout whose candidate this is, when the client (`identity`) is one of its members.
        public var rollout: String?
    }

    /// Writes a new version of `key` (raw content); answers the version written.
    @discardableResult
    public func put(
        _ key: String, content: Data, format: ConfigFormat? = nil, comment: String? = nil, ifRevision: Int64? = nil, secret: Bool = false,
        force: Bool = false
    ) async throws -> ConfigVersionInfo {
        var headers: [(String, String)] = [("Content-Type", "application/octet-stream")]
        if let ifRevision { headers.append(("If-Match", "\"\(ifRevision)\"")) }
        let answer = try await send(
            .PUT, "/v1/config/\(key)",
            query: [("format", format?.rawValue), ("comment", comment), ("secret", secret ? "true" : nil), ("force", force ? "true" : nil)],
            headers: headers, body: content)
        return try decode(ConfigVersionInfo.self, answer)
    }

    /// Reads `key`, current or as of store revision `revision`; with `index`, first waits (up to
    /// `wait`) for a change after that store revision.
    public func get(_ key: String, revision: Int64? = nil, index: Int64? = nil, wait: Duration? = nil) async throws -> Content {
        let waitText = wait.map { DurationParser.format($0) }
        let answer = try await send(
            .GET, "/v1/config/\(key)",
            query: [("revision", revision.map(String.init)), ("index", index.map(String.init)), ("wait", waitText)],
            timeout: index == nil ? nil : .seconds(Int64((wait ?? .seconds(30)).components.seconds) + 30))
        let headers = answer.headers
        return Content(
            key: key,
            content: Data(buffer: answer.body),
            revision: headers.first(name: "X-Capstan-Revision").flatMap { Int64($0) } ?? 0,
            version: headers.first(name: "X-Capstan-Version").flatMap { Int64($0) } ?? 0,
            format: headers.first(name: "X-Capstan-Format").flatMap { ConfigFormat(rawValue: $0) } ?? .text,
            index: headers.first(name: "X-Capstan-Index").flatMap { Int64($0) } ?? 0,
            rollout: headers.first(name: "X-Capstan-Rollout"))
    }

    public func list(_ prefix: String = "", limit: Int? = nil) async throws -> ConfigList {
        try decode(
            ConfigList.self,
            try await send(.GET, "/v1/configs", query: [("prefix", prefix), ("limit", limit.map(String.init))]))
    }

    @discardableResult
    public func delete(_ key: String, ifRevision: Int64? = nil, force: Bool = false) async throws -> ConfigVersionInfo {
        let headers = ifRevision.map { [("If-Match", "\"\($0)\"")] } ?? []
        return try decode(
            ConfigVersionInfo.self,
            try await send(.DELETE, "/v1/config/\(key)", query: [("force", force ? "true" : nil)], headers: headers))
    }

    public func history(_ key: String, limit: Int? = nil) async throws -> ConfigHistory {
        try decode(
            ConfigHistory.self, try await send(.GET, "/v1/history/\(key)", query: [("limit", limit.map(String.init))]))
    }

    /// Unified diff of `key` between store revisions `from` and `to` (default: current).
    public func diff(_ key: String, from: Int64, to: Int64? = nil) async throws -> String {
        let answer = try await send(
            .GET, "/v1/diff/\(key)", query: [("from", String(from)), ("to", to.map(String.init))])
        return String(buffer: answer.body)
    }

    @discardableResult
    public func rollback(_ key: String, to: Int64? = nil, comment: String? = nil, ifRevision: Int64? = nil) async throws
        -> ConfigVersionInfo
    {
        let headers = ifRevision.map { [("If-Match", "\"\($0)\"")] } ?? []
        return try decode(
            ConfigVersionInfo.self,
            try await send(
                .POST, "/v1/rollback/\(key)", query: [("to", to.map(String.init)), ("comment", comment)],
                headers: headers))
    }
}
