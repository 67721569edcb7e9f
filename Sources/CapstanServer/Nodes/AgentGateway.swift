import CapstanCore
import Foundation
import HTTPTypes
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket

/// The agents' side of the server: one WebSocket per agent at `/v1/agent/connect`.
///
/// The agent names itself with `X-Capstan-Node` and proves it with its secret as a bearer
/// token; a request without both, or with a wrong secret, is not upgraded and gets 401 from the
/// route. On the connection the agent says `hello` (facts, labels) first, within 10 seconds; the
/// server answers `welcome` with the heartbeat interval, and counts each `heartbeat` after that.
struct AgentGateway: Sendable {
    let registry: NodeRegistry
    let templates: TemplateService
    let pusher: TemplatePusher
    let links: AgentLinks
    let jobs: JobService
    let checks: CheckService
    let metrics: NodeMetrics
    let metricsInterval: Duration

    static let path = "/v1/agent/connect"
    /// The largest message from an agent: a job result with two 1 MiB outputs, escaped.
    static let maxMessageBytes = 16 << 20
    static let helloTimeout: Duration = .seconds(10)

    /// Whether to upgrade `request`: only a node's own, authenticated request to the agent path.
    func shouldUpgrade(_ request: HTTPRequest, channel: any Channel, logger: Logger) async -> ShouldUpgradeResult<
        WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>
    > {
        guard let path = request.path, path.split(separator: "?").first.map(String.init) == Self.path,
            let (name, secret) = Self.credentials(request.headerFields)
        else { return .dontUpgrade }
        let serial = await channel.verifiedClientCertificateSerial()
        guard (try? await registry.authenticate(name: name, secret: secret, certificateSerial: serial)) != nil else { return .dontUpgrade }
        return .upgrade([:]) { inbound, outbound, context in
            try await serve(name: name, channel: channel, inbound: inbound, outbound: outbound, logger: context.logger)
        }
    }

    /// The node name and secret a request carries, if both are there.
    static func credentials(_ fields: HTTPFields) -> (name: String, secret: String)? {
        guard let name = fields[.capstanNode], !name.isEmpty, let authorization = fields[.authorization],
            authorization.hasPrefix("Bearer ")
        else { return nil }
        let secret = String(authorization.dropFirst("Bearer ".count))
        return secret.isEmpty ? nil : (name, secret)
    }

    /// Serves one agent's connection; `channel` is the connection's, written directly by its outbox.
    func serve(name: String, channel: any Channel, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, logger: Logger) async throws {
        var messages = inbound.messages(maxSize: Self.maxMessageBytes).makeAsyncIterator()
        // An agent that connects and says nothing is closed after the hello timeout.
        let helloTimer = Task {
            try await Task.sleep(for: Self.helloTimeout)
            try await refuse(outbound, "no hello within \(Self.helloTimeout)")
        }
        let first = try? await messages.next()
        helloTimer.cancel()
        guard case .text(let text)? = first, let hello = try? AgentMessage.decode(text) else {
            try await refuse(outbound, "the first message must be a hello")
            return
        }
        guard (AgentMessage.oldestAcceptedVersion...AgentMessage.currentVersion).contains(hello.v) else {
            try await refuse(
                outbound,
                "agent protocol version \(hello.v) is not supported: this server accepts "
                    + "\(AgentMessage.oldestAcceptedVersion) to \(AgentMessage.currentVersion); upgrade the agent or the server")
            return
        }
        guard hello.type == .hello, let greeting = hello.hello else {
            try await refuse(outbound, "the first message must be a hello, not \(hello.type.rawValue)")
            return
        }
        let connection: UInt64
        do {
            connection = try await registry.liveness.connected(name: name, hello: greeting) {
                Task {
                    try? await outbound.writeTextMessage(
                        AgentMessage.encode(AgentMessage(type: .error, error: "node \(name) was removed from the server")))
                    try? await outbound.close(.normalClosure, reason: "node removed")
                }
            }
        } catch {
            try await refuse(outbound, "\(error)")
            return
        }
        do {
            // In place before the welcome, so that every heartbeat and report the agent sends
            // after it is read on the event loop, in order.
            let outbox = try await installFastPaths(on: channel, name: name, connection: connection)
            defer { outbox.close() }
            let milliseconds = registry.liveness.heartbeatInterval.milliseconds
            try await outbound.writeTextMessage(
                AgentMessage.encode(
                    AgentMessage(
                        type: .welcome,
                        welcome: .init(
                            node: name, heartbeatIntervalMilliseconds: milliseconds,
                            metricsIntervalMilliseconds: metricsInterval.milliseconds))))
            links.add(name, AgentLinks.Link(connection: connection, version: hello.v, outbox: outbox))
            await pusher.attach(connection: connection, name: name, digest: greeting.templatesDigest) { outbox.post($0) }
            // Heartbeats and reports in the plain form agents write are read by the frame
            // reader; what comes here is the rest, and those in another form.
            while let message = try await messages.next() {
                guard case .text(let text) = message,
                    let decoded = AgentMessage.quickDecode(text) ?? (try? AgentMessage.decode(text))
                else {
                    registry.liveness.sawTraffic(name: name, connection: connection)
                    logger.warning("agent sent a message that is not one", metadata: ["node": "\(name)"])
                    continue
                }
                if receiveAtOnce(decoded, name: name, connection: connection) { continue }
                registry.liveness.sawTraffic(name: name, connection: connection)
                switch decoded.type {
                case .heartbeat, .report:
                    break
                case .check:
                    if let result = decoded.check { await checks.record(result, from: name) }
                case .metrics:
                    if let sample = decoded.metrics { metrics.record(sample, from: name) }
                case .jobResult:
                    if let result = decoded.jobResult { await jobs.received(result, from: name) }
                case .jobOutput:
                    if let output = decoded.jobOutput { await jobs.received(output, from: name) }
                case .error:
                    logger.warning("agent reported an error", metadata: ["node": "\(name)", "error": "\(decoded.error ?? "")"])
                case .hello, .welcome, .templates, .job, .jobCancel:
                    logger.warning("agent sent an unexpected \(decoded.type.rawValue)", metadata: ["node": "\(name)"])
                }
            }
        } catch {
            logger.debug("agent connection failed", metadata: ["node": "\(name)", "error": "\(error)"])
        }
        pusher.detach(connection: connection)
        links.remove(name, connection: connection)
        await jobs.disconnected(name, connection: connection)
        await registry.liveness.disconnected(name: name, connection: connection)
    }

    /// Handles a heartbeat or a template report, neither of which waits for anything; answers
    /// false for any other message.
    func receiveAtOnce(_ message: AgentMessage, name: String, connection: UInt64) -> Bool {
        switch message.type {
        case .heartbeat:
            registry.liveness.heartbeat(name: name, connection: connection)
        case .report:
            registry.liveness.sawTraffic(name: name, connection: connection)
            if let report = message.report { templates.record(report, from: name) }
        default:
            return false
        }
        return true
    }

    /// Puts an `AgentFrameReader` right after the connection's WebSocket frame decoder, and an
    /// `AgentFrameWriter` right before its encoder; answers the outbox that writes from there.
    private func installFastPaths(on channel: any Channel, name: String, connection: UInt64) async throws -> AgentOutbox {
        let gateway = self
        return try await channel.eventLoop.submit {
            let pipeline = channel.pipeline.syncOperations
            let decoder = try pipeline.handler(type: ByteToMessageHandler<WebSocketFrameDecoder>.self)
            let reader = AgentFrameReader { gateway.receiveAtOnce($0, name: name, connection: connection) }
            try pipeline.addHandler(reader, position: .after(decoder))
            let writer = AgentFrameWriter()
            try pipeline.addHandler(writer, position: .before(try pipeline.handler(type: WebSocketFrameEncoder.self)))
            return AgentOutbox(writer: try pipeline.context(handler: writer))
        }.get()
    }

    private func refuse(_ outbound: WebSocketOutboundWriter, _ reason: String) async throws {
        try? await outbound.writeTextMessage(AgentMessage.encode(AgentMessage(type: .error, error: reason)))
        try? await outbound.close(.policyViolation, reason: String(reason.prefix(120)))
    }
}

extension HTTPField.Name {
    static let capstanNode = Self("X-Capstan-Node")!
}
