import CapstanCore
import CapstanStore
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle

/// Assembles the server: store, services, HTTP routes.
public enum CapstanServer {
    /// What a started server tells its caller.
    public struct Started: Sendable {
        public var port: Int
        /// The token agents enroll with.
        public var joinToken: String
        /// The root API token, when this start bootstrapped the installation (shown once).
        public var rootToken: String?
        /// TLS as served; nil on plain HTTP.
        public var tls: ServingTLS?
        /// The console's sessions (`--dev` makes its one-time login link with them).
        let sessions: ConsoleSessions
        let access: AccessControl

        /// A console link's code that logs in once as `token`; nil when the token does not work.
        public func consoleLoginCode(for token: String) async -> String? {
            guard let caller = try? await access.authenticate(token) else { return nil }
            return sessions.loginCode(for: caller)
        }

        /// The join token as agents are given it: with TLS it pins the CA's fingerprint.
        public var agentJoinToken: String {
            JoinToken(secret: joinToken, fingerprint: tls?.anchorFingerprint, verifiesName: tls?.givenCertificate ?? false).description
        }
    }

    /// Builds the router with every route and middleware; tests use it in-process.
    public static func makeRouter(
        service: ConfigService,
        registry: NodeRegistry? = nil,
        templates: TemplateService? = nil,
        jobs: JobService? = nil,
        nodeMetrics: NodeMetrics? = nil,
        schedules: ScheduleService? = nil,
        checks: CheckService? = nil,
        rollouts: RolloutService? = nil,
        access: AccessControl? = nil,
        sessions: ConsoleSessions? = nil,
        audit: AuditLog? = nil,
        limits: AccessLimits = AccessLimits(),
        store: any KeyValueStore,
        metrics: ServerMetrics,
        tlsAnchor: String? = nil
    ) -> Router<CapstanRequestContext> {
        let registry =
            registry
            ?? NodeRegistry(
                store: store, heartbeatInterval: .seconds(5), joinToken: NodeRegistry.randomJoinToken(),
                logger: Logger(label: "capstan.nodes"))
        let router = Router(context: CapstanRequestContext.self)
        router.add(middleware: MetricsMiddleware(metrics: metrics))
        router.add(middleware: ProblemMiddleware())
        let access = access ?? AccessControl(store: store)
        let audit = audit ?? AuditLog(store: store)
        let rules = RouteRules()
        let sessions = sessions ?? ConsoleSessions(store: store)
        router.add(
            middleware: AccessMiddleware(
                rules: rules, access: access, sessions: sessions, audit: audit, store: store, limits: limits, maxBody: max(service.configuration.maxContentSize, 1 << 20)))
        // Every route is registered with its access rule.
        let routes = GuardedRouter(router, rules: rules)
        AccessRoutes(access: access, audit: audit).register(on: routes)
        let templates = templates ?? TemplateService(store: store, logger: Logger(label: "capstan.templates"))
        let checks = checks ?? CheckService(store: store, logger: Logger(label: "capstan.checks"))
        let rollouts =
            rollouts
            ?? RolloutService(
                store: store, configs: service, registry: registry, checks: checks, templates: templates, logger: Logger(label: "capstan.rollouts"))
        NamespaceRoutes(service: service).register(on: routes)
        ConfigRoutes(service: service, metrics: metrics, rollouts: rollouts).register(on: routes)
        WatchRoutes(service: service, metrics: metrics, rollouts: rollouts).register(on: routes)
        RolloutRoutes(rollouts: rollouts).register(on: routes)
        let nodeRoutes = NodeRoutes(registry: registry, templates: templates, metrics: nodeMetrics ?? NodeMetrics(), checks: checks, tlsAnchor: tlsAnchor)
        nodeRoutes.register(on: routes)
        CheckRoutes(checks: checks, registry: registry).register(on: routes)
        TemplateRoutes(templates: templates, registry: registry, rollouts: rollouts).register(on: routes)
        let jobs = jobs ?? JobService(store: store, registry: registry, links: AgentLinks(), checks: checks, logger: Logger(label: "capstan.jobs"))
        JobRoutes(jobs: jobs).register(on: routes)
        let schedules = schedules ?? ScheduleService(store: store, jobs: jobs, logger: Logger(label: "capstan.schedules"))
        ScheduleRoutes(schedules: schedules).register(on: routes)
        OperationsRoutes(service: service, metrics: metrics, store: store).register(on: routes)
        if let view = ConsoleView.bundled {
            let pages = ConsolePages(
                view: view, service: service, registry: registry, templates: templates, jobs: jobs, audit: audit, nodes: nodeRoutes,
                schedules: schedules, access: access, rollouts: rollouts)
            ConsoleRoutes(view: view, access: access, sessions: sessions, pages: pages, secureCookies: tlsAnchor != nil)
                .register(on: routes)
        }
        return router
    }

    /// Builds the HTTP application over `store` (whose own background work the caller runs).
    ///
    /// - Parameter onRunning: called with the bound port once the server listens.
    public static func makeApplication(
        configuration: ServerConfiguration,
        store: any KeyValueStore,
        logger: Logger,
        tls: ServingTLS? = nil,
        sessions: ConsoleSessions? = nil,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let service = ConfigService(store: store, configuration: configuration.config, secrets: configuration.secretKeyring)
        let registry = NodeRegistry(
            store: store, heartbeatInterval: configuration.heartbeatInterval,
            joinToken: configuration.joinToken ?? NodeRegistry.randomJoinToken(), logger: logger,
            authority: tls?.authority, certificateLifetime: configuration.nodeCertificateLifetime)
        let templates = TemplateService(
            store: store, logger: logger, secrets: configuration.secretKeyring, deliversSecrets: tls != nil)
        let checks = CheckService(store: store, logger: logger)
        // A node that missed three samples is left out of the scrape and `node top`.
        let nodeMetrics = NodeMetrics(staleAfter: configuration.metricsInterval * 3)
        let rollouts = RolloutService(
            store: store, configs: service, registry: registry, checks: checks, templates: templates, hostMetrics: nodeMetrics, logger: logger)
        let pusher = TemplatePusher(templates: templates, checks: checks, registry: registry, logger: logger, rollouts: rollouts)
        let links = AgentLinks()
        let jobs = JobService(
            store: store, registry: registry, links: links, checks: checks, retention: configuration.jobRetention,
            runnerTTL: configuration.lockTTL, logger: logger)
        let schedules = ScheduleService(store: store, jobs: jobs, logger: logger)
        let gateway = AgentGateway(
            registry: registry, templates: templates, pusher: pusher, links: links, jobs: jobs, checks: checks, metrics: nodeMetrics,
            metricsInterval: configuration.metricsInterval)
        let metrics = ServerMetrics()
        let access = AccessControl(store: store, logger: logger)
        let audit = AuditLog(store: store, logger: logger)
        let router = makeRouter(
            service: service, registry: registry, templates: templates, jobs: jobs, nodeMetrics: nodeMetrics, schedules: schedules, checks: checks,
            rollouts: rollouts, access: access, sessions: sessions, audit: audit, limits: configuration.limits, store: store, metrics: metrics,
            tlsAnchor: tls?.anchorPEM)
        return Application(
            router: router,
            server: HTTPServerBuilder { responder in
                // Slow clients: every request head must arrive whole within the head timeout of its
                // first byte (the first one's clock starts with the connection), a body within the
                // body timeout of its head, an idle connection closes after the idle timeout, and
                // headers are capped; a malformed request is answered and its connection closed.
                let headTimeout = TimeAmount(configuration.requestHeadTimeout)
                let bodyTimeout = TimeAmount(configuration.requestBodyTimeout)
                let http1 = HTTP1Channel.Configuration(
                    additionalChannelHandlers: [
                        ExpectContinueHandler(), NextHeadDeadline(timeout: headTimeout), RequestBodyDeadline(timeout: bodyTimeout),
                    ],
                    idleTimeout: TimeAmount(configuration.idleTimeout),
                    httpDecoderConfiguration: HTTPEdgeLimits.decoder)
                let upgrade = HTTP1WebSocketUpgradeChannel(responder: responder, configuration: .init(http1: http1)) { request, channel, logger in
                    await gateway.shouldUpgrade(request, channel: channel, logger: logger)
                }
                return HTTPEdge(base: upgrade, headTimeout: headTimeout, tls: try tls.map { try NIOSSLContext(configuration: $0.configuration) })
            },
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port), serverName: "capstan",
                // Connections never take the descriptors the store needs to open its files.
                availableConnectionsDelegate: .maximum(AcceptBackoff.connectionLimit, logger: logger)),
            services: [
                // First, so shut down last (after the HTTP server's last answer): a stop loses no
                // audit entry that was submitted and not yet committed.
                AuditFlushService(audit: audit),
                CompactionService(
                    store: store, keep: configuration.compactionKeep, interval: configuration.compactionInterval,
                    lockTTL: configuration.lockTTL, logger: logger),
                // Liveness checks, and template pushes to connected agents.
                BackgroundService { try await registry.liveness.run() },
                BackgroundService { try await pusher.run() },
                // Agents' template reports, written in batches; the last ones at shutdown too.
                ShutdownAwareService { await templates.runReportWriter() },
                // Jobs a stopped replica left running are closed; the history is kept to its limits.
                BackgroundService { try await jobs.runUpkeep() },
                BackgroundService { try await schedules.run() },
                // Rollouts' gates and timed steps, on one replica at a time.
                RolloutStepper(rollouts: rollouts, audit: audit, lockTTL: configuration.lockTTL, logger: logger),
                // Tokens and roles cached in step with the store; the audit log kept to its age.
                BackgroundService { try await access.run() },
                BackgroundService { try await audit.runRetention(maxAge: configuration.auditRetention) },
            ],
            onServerRunning: { channel in
                // Out of descriptors, the listening channel pauses instead of spinning on accept.
                try? await channel.eventLoop.submit {
                    try channel.pipeline.syncOperations.addHandler(AcceptBackoff(logger: logger), position: .first)
                }.get()
                await onRunning(channel.localAddress?.port ?? configuration.port)
            },
            logger: logger
        )
    }

    /// Opens the configured store and serves until SIGTERM or SIGINT.
    public static func run(
        configuration: ServerConfiguration,
        logger: Logger,
        onRunning: @escaping @Sendable (Started) async -> Void = { _ in }
    ) async throws {
        let store = try await configuration.storeLocation.open(
            prefix: configuration.storePrefix, timeout: configuration.storeTimeout, logger: logger)
        do {
            var configuration = configuration
            // The join token and the CA's key are sealed under the secret key; a store that holds
            // them in clear (written before they were sealed) is sealed in place first.
            let secrets = InstallationSecrets(store: store, keyring: configuration.secretKeyring, logger: logger)
            try await secrets.sealStored()
            let joinToken = try await secrets.joinToken(given: configuration.joinToken)
            configuration.joinToken = joinToken
            let rootToken = try await AccessControl.bootstrap(store: store, given: configuration.rootToken)
            var serving: ServingTLS?
            if let settings = configuration.tls {
                serving = try ServingTLS.prepare(settings, authority: try await secrets.authority(), host: configuration.host)
            }
            let tls = serving
            let sessions = ConsoleSessions(store: store)
            let app = makeApplication(configuration: configuration, store: store, logger: logger, tls: tls, sessions: sessions) { port in
                await onRunning(
                    Started(
                        port: port, joinToken: joinToken, rootToken: rootToken, tls: tls, sessions: sessions,
                        access: AccessControl(store: store, logger: logger)))
            }
            let group = ServiceGroup(
                configuration: .init(
                    services: [.init(service: StoreService(store: store)), .init(service: app)],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        } catch {
            await StoreLocation.close(store)
            throw error
        }
        await StoreLocation.close(store)
    }
}

/// At shutdown, once the HTTP server has answered its last request, waits until every audit
/// entry appended so far is committed: answers do not wait for their entries' commits.
struct AuditFlushService: Service {
    let audit: AuditLog

    func run() async throws {
        try? await gracefulShutdown()
        await audit.settled()
    }
}

/// Work that ends by itself when told of a graceful shutdown, and is not cancelled for it.
struct ShutdownAwareService: Service {
    let work: @Sendable () async -> Void

    func run() async throws {
        await work()
    }
}

/// Background work that runs for as long as the server does and stops at shutdown.
struct BackgroundService: Service {
    let work: @Sendable () async throws -> Void

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                try await work()
            }
        } catch is CancellationError {
            // Shutting down.
        }
    }
}
