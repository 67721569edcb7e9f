import CapstanCore
import Foundation
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
import HTTPTypes
import HummingbirdWSClient
import Logging
import Synchronization

/// A bare WebSocket client speaking (or not) the agent protocol, for protocol tests.
enum RawAgent {
    static func enroll(_ server: String, name: String) async throws -> EnrollResponse {
        var request = URLRequest(url: URL(string: server + "/v1/agent/enroll")!)
        request.httpMethod = "POST"
        let facts = NodeFacts(
            hostname: "h", os: "o", kernel: "k", arch: "a", cpuCount: 1, memoryBytes: 1, addresses: [], agentVersion: "t", bootTime: nil)
        request.httpBody = try JSONEncoder().encode(EnrollRequest(joinToken: NodeAgentTests.joinToken, name: name, labels: [:], facts: facts))
        let (data, _) = try await URLSession.shared.data(for: request)
        return try JSONDecoder().decode(EnrollResponse.self, from: data)
    }

    /// Connects as `identity`, sends `hello` as given, and answers the first message the server sends back.
    static func exchange(_ server: String, identity: EnrollResponse, hello: String) async throws -> String {
        var options = WebSocketClientConfiguration()
        options.additionalHeaders = [HTTPField.Name("X-Capstan-Node")!: identity.name, .authorization: "Bearer \(identity.secret)"]
        let answer = Mutex("")
        try await WebSocketClient.connect(
            url: server.replacingOccurrences(of: "http://", with: "ws://") + "/v1/agent/connect", configuration: options,
            logger: Logger(label: "raw-agent")
        ) { inbound, outbound, _ in
            try await outbound.writeTextMessage(hello)
            var messages = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
            if case .text(let text)? = try await messages.next() { answer.withLock { $0 = text } }
        }
        return answer.withLock { $0 }
    }

    /// Connects as `identity`, sends `hello`, and stays connected (reading and dropping what the
    /// server sends) until the task is cancelled; answers once the server welcomed it.
    static func hold(_ server: String, identity: EnrollResponse, hello: String) async throws -> Task<Void, Never> {
        var options = WebSocketClientConfiguration()
        options.additionalHeaders = [HTTPField.Name("X-Capstan-Node")!: identity.name, .authorization: "Bearer \(identity.secret)"]
        let (welcomes, welcome) = AsyncStream.makeStream(of: Void.self)
        let task = Task {
            _ = try? await WebSocketClient.connect(
                url: server.replacingOccurrences(of: "http://", with: "ws://") + "/v1/agent/connect", configuration: options,
                logger: Logger(label: "raw-agent")
            ) { inbound, outbound, _ in
                try await outbound.writeTextMessage(hello)
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    if case .text(let text) = message, text.contains(#""type":"welcome""#) { welcome.yield() }
                }
            }
            welcome.finish()
        }
        var iterator = welcomes.makeAsyncIterator()
        guard await iterator.next() != nil else { throw RawAgentRefused() }
        return task
    }

    /// Connects as `identity`, says hello as an agent of this build does, and runs `body` with a
    /// function that sends a text message and one that answers the next text message received.
    static func converse(
        _ server: String, identity: EnrollResponse,
        _ body: @escaping @Sendable (_ send: @Sendable (String) async throws -> Void, _ next: () async throws -> String) async throws -> Void
    ) async throws {
        var options = WebSocketClientConfiguration()
        options.additionalHeaders = [HTTPField.Name("X-Capstan-Node")!: identity.name, .authorization: "Bearer \(identity.secret)"]
        let facts = NodeFacts(
            hostname: "h", os: "o", kernel: "k", arch: "a", cpuCount: 1, memoryBytes: 1, addresses: [], agentVersion: "t", bootTime: nil)
        try await WebSocketClient.connect(
            url: server.replacingOccurrences(of: "http://", with: "ws://") + "/v1/agent/connect", configuration: options,
            logger: Logger(label: "raw-agent")
        ) { inbound, outbound, _ in
            try await outbound.writeTextMessage(AgentMessage.encode(AgentMessage(type: .hello, hello: .init(facts: facts, labels: [:]))))
            var messages = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
            try await body({ try await outbound.writeTextMessage($0) }) {
                while let message = try await messages.next() {
                    if case .text(let text) = message { return text }
                }
                throw RawAgentRefused()
            }
        }
    }

    struct RawAgentRefused: Error {}
}
