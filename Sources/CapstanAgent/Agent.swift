import AsyncHTTPClient
import CapstanCore
import CapstanTLS
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOFoundationCompat
import NIOSSL
import HummingbirdWSClient
import Synchronization

/// What `capstan agent` is told.
public struct AgentConfiguration: Sendable {
    /// Base URL of a server replica, e.g. `http://127.0.0.1:8740`.
    public var server: String
    public var joinToken: String?
    /// Where the agent keeps its identity (and, later, what it last rendered).
    public var dataDirectory: String
    /// The node name; the host name when nil.
    public var name: String?
    public var labels: [String: String] = [:]
    /// Directories templates may write into (none by default).
    public var allowedPaths: [String] = []
    /// Which commands this agent runs: jobs, templates' check and reload commands, command checks.
    public var execPolicy: ExecPolicy = .all
    /// Longest wait between reconnection attempts.
    public var maxBackoff: Duration = .seconds(30)
    /// First wait after a lost connection (doubled per failed attempt, with full jitter).
    public var initialBackoff: Duration = .milliseconds(500)
    /// The CA certificate (PEM file) to verify an HTTPS server by, instead of the one the join
    /// token pins.
    public var caCertificateFile: String?

    public init(server: String, joinToken: String?, dataDirectory: String, name: String? = nil) {
        self.server = server
        self.joinToken = joinToken
        self.dataDirectory = dataDirectory
        self.name = name
    }
}

/// `capstan agent`: enrolls once, then keeps one WebSocket to the server, says hello with the
/// host's facts, and sends a heartbeat every interval the server asks for. A lost connection is
/// retried with exponential backoff and full jitter (a random wait up to 0.5 s, 1 s, 2 s ... capped
/// at `maxBackoff`), so a fleet that lost its server does not come back all at once.
public final class Agent: Sendable {
    let configuration: AgentConfiguration
    let logger: Logger
    let http: HTTPClient
    /// Events for tests and the CLI: "enrolled", "connected", "disconnected".
    let events: @Sendable (String) -> Void

    public init(configuration: AgentConfiguration, logger: Logger, events: @escaping @Sendable (String) -> Void = { _ in }) {
        self.configuration = configuration
        self.logger = logger
        self.events = events
        self.http = HTTPClient(eventLoopGroupProvider: .singleton)
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    /// Runs until cancelled; throws only what retrying cannot fix (no identity and no join
    /// token, a refused join token).
    public func run() async throws {
        let current = CurrentIdentity(try await loadOrEnroll())
        let executor = JobExecutor(policy: configuration.execPolicy, logger: logger)
        // Commands still running when the agent stops die with it, not after it.
        defer { executor.cancelAll() }
        let worker = TemplateWorker(
            applier: TemplateApplier(allowedPaths: configuration.allowedPaths, policy: configuration.execPolicy, logger: logger),
            dataDirectory: configuration.dataDirectory, name: current.identity.name, logger: logger)
        let checks = CheckRunner(http: http, policy: configuration.execPolicy, logger: logger)
        // Checks of the last set run from the start: the server resends a set only when it changed.
        await checks.update(worker.storedSet()?.checks ?? [])
        try await withThrowingDiscardingTaskGroup { group in
            // With TLS the certificate is renewed beside the connection, a third of its life before it ends.
            group.addTask { await self.renewCertificates(current) }
            // Template sets are applied beside the connections, and across them.
            group.addTask { await worker.run() }
            defer { group.cancelAll() }
            try await connections(current, worker: worker, executor: executor, checks: checks)
        }
    }

    /// Connects, and connects again whenever the connection ends, until cancelled.
    private func connections(_ current: CurrentIdentity, worker: TemplateWorker, executor: JobExecutor, checks: CheckRunner) async throws {
        // One sampler for the agent's life: rates run on across reconnects.
        let sampler = MetricsSource()
        var attempt = 0
        while !Task.isCancelled {
            let identity = current.identity
            var outcome = Outcome.unauthorized
            if let expires = AgentTLS.schedule(identity)?.expires, expires < Date() {
                logger.warning("this node's client certificate expired", metadata: ["expired": "\(expires)"])
            } else {
                let connection = AgentConnection(
                    identity: identity, labels: configuration.labels, worker: worker, executor: executor, sampler: sampler,
                    checks: checks, logger: logger, events: events, welcomed: Welcomed())
                outcome = await connectOnce(connection)
            }
            switch outcome {
            case .welcomed:
                attempt = 0
            case .unauthorized:
                // The server forgot this node (removed, or a new store): enroll again if we can.
                guard configuration.joinToken != nil else {
                    throw AgentError(
                        "the server refuses node \(identity.name)'s identity and no --join-token was given to enroll again")
                }
                logger.warning("the server refused this node's identity; enrolling again", metadata: ["node": "\(identity.name)"])
                current.identity = try await enroll()
                continue
            case .failed:
                attempt += 1
            }
            let wait = backoff(attempt: attempt)
            logger.info("reconnecting", metadata: ["in": "\(wait)", "attempt": "\(attempt)"])
            try await Task.sleep(for: wait)
        }
    }

    /// Exponential backoff with full jitter: a random wait up to `initialBackoff` × 2^attempt,
    /// capped at `maxBackoff`.
    func backoff(attempt: Int) -> Duration {
        let ceiling = min(configuration.maxBackoff, configuration.initialBackoff * (1 << min(attempt, 16)))
        return ceiling * Double.random(in: 0...1)
    }

    enum Outcome {
        /// The server welcomed the agent (and the connection later ended).
        case welcomed
        /// The server does not know the identity.
        case unauthorized
        /// No connection, or it ended before the welcome.
        case failed
    }

    /// One connection, from opening to its end.
    private func connectOnce(_ connection: AgentConnection) async -> Outcome {
        let identity = connection.identity
        let url = configuration.server.replacingOccurrences(of: "http://", with: "ws://").replacingOccurrences(
            of: "https://", with: "wss://") + "/v1/agent/connect"
        var options = WebSocketClientConfiguration()
        // Server Name Indication takes names only: an agent that reaches the server by address
        // (and does not check names) sends a placeholder.
        if identity.verifiesServerName != true, let host = URL(string: configuration.server)?.host,
            host.first?.isNumber == true || host.contains(":")
        {
            options.sniHostname = "capstan"
        }
        options.additionalHeaders = [
            HTTPField.Name("X-Capstan-Node")!: identity.name, .authorization: "Bearer \(identity.secret)",
        ]
        do {
            let tls = try AgentTLS.configuration(identity)
            // The connection lasts until the server closes it (or it breaks).
            try await WebSocketClient.connect(url: url, configuration: options, tlsConfiguration: tls, logger: logger) { inbound, outbound, _ in
                try await connection.serve(inbound: inbound, outbound: outbound)
            }
        } catch {
            logger.warning("connection failed", metadata: ["error": "\(error)"])
        }
        if connection.welcomed.value {
            events("disconnected")
            return .welcomed
        }
        return await isUnauthorized(identity) ? .unauthorized : .failed
    }

    /// Asks the server (plain HTTP) whether it knows `identity`: a failed WebSocket upgrade
    /// does not say why.
    private func isUnauthorized(_ identity: AgentIdentity) async -> Bool {
        var request = HTTPClientRequest(url: configuration.server + "/v1/agent/connect")
        request.headers.add(name: "X-Capstan-Node", value: identity.name)
        request.headers.add(name: "Authorization", value: "Bearer \(identity.secret)")
        request.tlsConfiguration = try? AgentTLS.configuration(identity)
        guard let response = try? await http.execute(request, timeout: .seconds(10)) else { return false }
        _ = try? await response.body.collect(upTo: 1 << 16)
        return response.status == .unauthorized
    }
}

/// The host metrics sampler, kept for the agent's life so that rates run on across reconnects.
final class MetricsSource: Sendable {
    private let sampler = Mutex(HostMetricsSampler())

    func sample() throws(HostMetricsSampler.FileError) -> HostSample {
        try sampler.withLock { sampler throws(HostMetricsSampler.FileError) in try sampler.sample() }
    }
}
