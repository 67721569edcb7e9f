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

/// The node identity an agent keeps in its data directory (`identity.json`, mode 0600).
public struct AgentIdentity: Codable, Sendable, Hashable {
    public var name: String
    public var id: String
    public var secret: String
    /// With TLS: the node's client certificate and key, and the CA the server is verified by (PEM).
    public var certificate: String?
    public var key: String?
    public var caCertificate: String?
    /// Whether the server's name is checked against its certificate (a CA given with
    /// `--ca-cert`, or a `cj1v-` token); otherwise any certificate from the pinned CA is the server.
    public var verifiesServerName: Bool?

    static func file(in directory: String) -> String {
        URL(fileURLWithPath: directory).appendingPathComponent("identity.json").path
    }

    static func load(from directory: String) throws -> AgentIdentity? {
        let path = file(in: directory)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(AgentIdentity.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw AgentError("\(path) is not a readable identity (\(error)); remove it to enroll again")
        }
    }

    func save(in directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try FileWriting.replace(Self.file(in: directory), with: try JSONEncoder().encode(self), mode: 0o600)
    }
}

public struct AgentError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The identity in use, replaced when the certificate is renewed.
final class CurrentIdentity: Sendable {
    private let value: Mutex<AgentIdentity>
    init(_ identity: AgentIdentity) { value = Mutex(identity) }
    var identity: AgentIdentity {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
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
        // With TLS the certificate is renewed beside the connection, a third of its life before it ends.
        let renewals = Task { await renewCertificates(current) }
        defer { renewals.cancel() }
        var identity: AgentIdentity { current.identity }
        let executor = JobExecutor(policy: configuration.execPolicy, logger: logger)
        // One sampler for the agent's life: rates run on across reconnects.
        let sampler = MetricsSource()
        let checks = CheckRunner(http: http, policy: configuration.execPolicy, logger: logger)
        // Commands still running when the agent stops die with it, not after it.
        defer { executor.cancelAll() }
        let worker = TemplateWorker(
            applier: TemplateApplier(allowedPaths: configuration.allowedPaths, policy: configuration.execPolicy, logger: logger),
            dataDirectory: configuration.dataDirectory, name: identity.name, logger: logger)
        // Checks of the last set run from the start: the server resends a set only when it changed.
        await checks.update(worker.storedSet()?.checks ?? [])
        var attempt = 0
        while !Task.isCancelled {
            var outcome = Outcome.unauthorized
            if let expires = AgentTLS.schedule(identity)?.expires, expires < Date() {
                logger.warning("this node's client certificate expired", metadata: ["expired": "\(expires)"])
            } else {
                outcome = await connectOnce(identity, worker: worker, executor: executor, sampler: sampler, checks: checks)
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
    private func backoff(attempt: Int) -> Duration {
        let ceiling = min(configuration.maxBackoff, configuration.initialBackoff * (1 << min(attempt, 16)))
        return ceiling * Double.random(in: 0...1)
    }

    private func loadOrEnroll() async throws -> AgentIdentity {
        // The identity (the node's secret and key) and what templates last rendered are the
        // agent's own: the directory is made 0700 and those files 0600, once, and said. Other
        // files are left alone: --data-dir may name a directory that is not the agent's only.
        do {
            let tightened = try PrivateDirectory.prepare(configuration.dataDirectory, files: ["identity.json", "templates.json"])
            if !tightened.isEmpty {
                logger.warning(
                    "the agent's data directory was open to other users: made it the owner's only",
                    metadata: ["files": "\(tightened.joined(separator: ", "))"])
            }
        } catch {
            throw AgentError(error.message)
        }
        if let identity = try AgentIdentity.load(from: configuration.dataDirectory) {
            if let name = configuration.name, name != identity.name {
                throw AgentError(
                    "\(AgentIdentity.file(in: configuration.dataDirectory)) belongs to node \(identity.name), not \(name): "
                        + "use another --data-dir, or remove the file to enroll as \(name)")
            }
            // Enrolled while the server spoke plain HTTP: over TLS it needs a certificate first.
            if speaksTLS, identity.certificate == nil {
                guard configuration.joinToken != nil else {
                    throw AgentError(
                        "node \(identity.name) was enrolled without a certificate and the server now speaks TLS: "
                            + "remove it (capstan node rm \(identity.name)) and start the agent with the join token the server prints")
                }
                return try await enroll()
            }
            return identity
        }
        guard configuration.joinToken != nil else {
            throw AgentError(
                "no identity in \(configuration.dataDirectory) and no --join-token to enroll with (the server prints its token)")
        }
        return try await enroll()
    }

    /// Whether the server is reached over HTTPS (and so enrollment carries a certificate request).
    var speaksTLS: Bool { configuration.server.lowercased().hasPrefix("https://") }

    /// Enrolls with the join token, retrying while the server cannot be reached. Over HTTPS the
    /// server's CA is found first (by the token's pin) and a key made for the node's certificate.
    private func enroll() async throws -> AgentIdentity {
        let name = configuration.name ?? HostFacts.collect().hostname.lowercased()
        let joinToken: JoinToken
        do { joinToken = try JoinToken(parsing: configuration.joinToken ?? "") } catch { throw AgentError(error.message) }
        var body = EnrollRequest(joinToken: joinToken.secret, name: name, labels: configuration.labels, facts: HostFacts.collect())
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        var attempt = 0
        var anchor: String?
        var key: NodeKey?
        // A CA given by hand may be a public or corporate one: then the name is checked too.
        let verifiesName = configuration.caCertificateFile != nil || joinToken.verifiesName
        while true {
            var request = HTTPClientRequest(url: configuration.server + "/v1/agent/enroll")
            if speaksTLS {
                do {
                    if anchor == nil { anchor = try await AgentTLS.trustAnchor(configuration: configuration, http: http) }
                } catch let error as AgentError {
                    throw error
                } catch {
                    attempt += 1
                    logger.warning("cannot reach the server to enroll; retrying", metadata: ["error": "\(error)"])
                    try await Task.sleep(for: backoff(attempt: attempt))
                    continue
                }
                if key == nil {
                    let fresh = try NodeKey()
                    key = fresh
                    body.certificateRequest = try fresh.signingRequest(name: name)
                }
                var verified = TLSConfiguration.makeClientConfiguration()
                if !verifiesName { verified.certificateVerification = .noHostnameVerification }
                verified.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array((anchor ?? "").utf8)))
                request.tlsConfiguration = verified
            } else if joinToken.fingerprint != nil {
                throw AgentError("the join token pins a CA fingerprint but --server is plain HTTP: use the https:// address the server printed")
            }
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try encoder.encode(body)))
            do {
                let response = try await http.execute(request, timeout: .seconds(30))
                let bytes = try await response.body.collect(upTo: 1 << 20)
                guard response.status == .created else {
                    let detail = (try? JSONDecoder().decode(Problem.self, from: bytes))?.detail ?? String(buffer: bytes)
                    throw AgentError("the server refused to enroll node \(name): \(detail)")
                }
                let answer = try JSONDecoder().decode(EnrollResponse.self, from: bytes)
                if speaksTLS, answer.certificate == nil {
                    throw AgentError("the server answered the enrollment without a client certificate")
                }
                let identity = AgentIdentity(
                    name: answer.name, id: answer.id, secret: answer.secret, certificate: answer.certificate, key: key?.keyPEM,
                    caCertificate: anchor, verifiesServerName: speaksTLS ? verifiesName : nil)
                try identity.save(in: configuration.dataDirectory)
                logger.info("enrolled", metadata: ["node": "\(identity.name)", "node.id": "\(identity.id)"])
                events("enrolled")
                return identity
            } catch let error as AgentError {
                throw error
            } catch {
                // A certificate that does not check out is no outage: the token is not for this server.
                let text = String(describing: error)
                if text.contains("failedToValidateHostname") || text.contains("CERTIFICATE_VERIFY_FAILED") {
                    throw AgentError("\(configuration.server) is not the server the join token names: its certificate does not check out (\(text))")
                }
                attempt += 1
                logger.warning("cannot reach the server to enroll; retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: backoff(attempt: attempt))
            }
        }
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
    private func connectOnce(
        _ identity: AgentIdentity, worker: TemplateWorker, executor: JobExecutor, sampler: MetricsSource,
        checks: CheckRunner
    ) async -> Outcome {
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
        let welcomed = Welcomed()
        let labels = configuration.labels
        let events = self.events
        let logger = self.logger
        do {
            let tls = try AgentTLS.configuration(identity)
            try await WebSocketClient.connect(url: url, configuration: options, tlsConfiguration: tls, logger: logger) { inbound, outbound, _ in
                let facts = HostFacts.collect()
                let hello = AgentMessage(
                    type: .hello, hello: .init(facts: facts, labels: labels, templatesDigest: worker.storedDigest()))
                try await outbound.writeTextMessage(AgentMessage.encode(hello))
                var messages = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
                guard case .text(let text)? = try await messages.next() else { return }
                let welcome = try AgentMessage.decode(text)
                guard welcome.type == .welcome, let interval = welcome.welcome?.heartbeatIntervalMilliseconds else {
                    logger.error("the server refused the connection", metadata: ["reason": "\(welcome.error ?? "no welcome")"])
                    return
                }
                welcomed.set()
                events("connected")
                logger.info("connected", metadata: ["node": "\(identity.name)", "heartbeat.ms": "\(interval)"])
                // Every message goes out through one writer, in order: a message longer than a
                // frame is written as several, and another task's frame must not come between.
                let (outgoing, sender) = AsyncStream.makeStream(of: String.self)
                let writer = Task {
                    for await text in outgoing { try? await outbound.writeTextMessage(text) }
                }
                defer {
                    sender.finish()
                    writer.cancel()
                }
                let send: @Sendable (AgentMessage) -> Void = { message in
                    if let text = try? AgentMessage.encode(message) { sender.yield(text) }
                }
                let heartbeats = Task {
                    var sequence: Int64 = 0
                    while !Task.isCancelled {
                        sequence += 1
                        send(AgentMessage(type: .heartbeat, heartbeat: .init(sequence: sequence)))
                        try await Task.sleep(for: .milliseconds(interval))
                    }
                }
                defer { heartbeats.cancel() }
                let metricsInterval = welcome.welcome?.metricsIntervalMilliseconds ?? 15_000
                let metrics = Task {
                    while !Task.isCancelled {
                        // Reading /proc takes a moment; a failed read is logged and skipped.
                        do {
                            send(AgentMessage(type: .metrics, metrics: try sampler.sample()))
                        } catch let error as HostMetricsSampler.FileError {
                            logger.warning("could not sample host metrics", metadata: ["error": "\(error)"])
                        }
                        try await Task.sleep(for: .milliseconds(metricsInterval))
                    }
                }
                defer { metrics.cancel() }
                await checks.connected { result in
                    send(AgentMessage(type: .check, check: result))
                    events("check \(result.check) \(result.status.rawValue)")
                }
                await worker.connected(facts: facts) { report in
                    send(AgentMessage(type: .report, report: report))
                    events("template \(report.template) \(report.state.rawValue)")
                }
                // Template sets are applied beside the connection: reading goes on meanwhile. A
                // report that finds the connection gone is sent again after the next connect.
                // The connection lasts until the server closes it (or it breaks).
                while let message = try await messages.next() {
                    guard case .text(let text) = message, let decoded = try? AgentMessage.decode(text) else { continue }
                    switch decoded.type {
                    case .templates:
                        guard let set = decoded.templates else { continue }
                        let sequence = worker.nextSequence()
                        Task { await worker.submit(set, sequence: sequence) }
                        Task { await checks.update(set.checks ?? [], sequence: sequence) }
                    case .job:
                        guard let job = decoded.job else { continue }
                        // Jobs run beside the connection too; output and the result go back on
                        // it. When it drops, the commands are killed (below): the server retries
                        // or marks the node unreachable, and no retry runs beside a first try.
                        Task {
                            let result = await executor.run(job) { stream, text in
                                send(AgentMessage(type: .jobOutput, jobOutput: .init(id: job.id, attempt: job.attempt, stream: stream, text: text)))
                            }
                            send(AgentMessage(type: .jobResult, jobResult: result))
                            events("job \(job.id) \(result.outcome.rawValue)")
                        }
                    case .jobCancel:
                        if let id = decoded.jobCancel?.id { executor.cancel(id) }
                    case .error:
                        logger.error("the server closes the connection", metadata: ["reason": "\(decoded.error ?? "")"])
                    default:
                        continue
                    }
                }
            }
        } catch {
            logger.warning("connection failed", metadata: ["error": "\(error)"])
        }
        // Commands started over this connection cannot report any more.
        executor.cancelAll()
        if welcomed.value {
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

extension Agent {
    /// Renews the node's certificate whenever a third of its life is left, until cancelled.
    func renewCertificates(_ current: CurrentIdentity) async {
        var attempt = 0
        while !Task.isCancelled {
            // No certificate (plain HTTP): looked at again later, in case the agent enrolls anew.
            guard let (renewAt, _) = AgentTLS.schedule(current.identity) else {
                do { try await Task.sleep(for: .seconds(60)) } catch { return }
                continue
            }
            let wait = renewAt.timeIntervalSinceNow
            if wait > 0 {
                // Checked at least hourly, so that a clock that jumped is noticed.
                do { try await Task.sleep(for: .seconds(min(wait, 3600))) } catch { return }
                continue
            }
            do {
                current.identity = try await renew(current.identity)
                attempt = 0
            } catch {
                attempt += 1
                logger.warning("the certificate was not renewed; trying again", metadata: ["error": "\(error)"])
                do { try await Task.sleep(for: backoff(attempt: attempt)) } catch { return }
            }
        }
    }

    /// Asks for a certificate for a new key, over the mutual-TLS connection the current one opens.
    func renew(_ identity: AgentIdentity) async throws -> AgentIdentity {
        let key = try NodeKey()
        var request = HTTPClientRequest(url: configuration.server + "/v1/agent/renew")
        request.method = .POST
        request.tlsConfiguration = try AgentTLS.configuration(identity)
        request.headers.add(name: "X-Capstan-Node", value: identity.name)
        request.headers.add(name: "Authorization", value: "Bearer \(identity.secret)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(data: try JSONEncoder().encode(CertificateRenewal(certificateRequest: try key.signingRequest(name: identity.name)))))
        let response = try await http.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else {
            let detail = (try? JSONDecoder().decode(Problem.self, from: bytes))?.detail ?? String(buffer: bytes)
            throw AgentError("the server refused to renew the certificate: \(detail)")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let renewed = try decoder.decode(RenewedCertificate.self, from: bytes)
        var next = identity
        next.certificate = renewed.certificate
        next.key = key.keyPEM
        try next.save(in: configuration.dataDirectory)
        logger.info("certificate renewed", metadata: ["node": "\(identity.name)", "expires": "\(renewed.expires)"])
        events("certificate renewed")
        return next
    }
}

/// The host metrics sampler, kept for the agent's life so that rates run on across reconnects.
final class MetricsSource: Sendable {
    private let sampler = Mutex(HostMetricsSampler())

    func sample() throws(HostMetricsSampler.FileError) -> HostSample {
        try sampler.withLock { sampler throws(HostMetricsSampler.FileError) in try sampler.sample() }
    }
}

/// Set once the server welcomed the connection.
private final class Welcomed: Sendable {
    private let flag = Mutex(false)
    func set() { flag.withLock { $0 = true } }
    var value: Bool { flag.withLock { $0 } }
}
