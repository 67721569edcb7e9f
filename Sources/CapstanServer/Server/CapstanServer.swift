import CapstanStore
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// Assembles the server: store, services, HTTP routes.
public enum CapstanServer {
    /// Builds the router with every route and middleware; tests use it in-process.
    public static func makeRouter(
        service: ConfigService,
        store: any KeyValueStore,
        metrics: ServerMetrics
    ) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: MetricsMiddleware(metrics: metrics))
        router.add(middleware: ProblemMiddleware())
        NamespaceRoutes(service: service).register(on: router)
        ConfigRoutes(service: service, metrics: metrics).register(on: router)
        WatchRoutes(service: service, metrics: metrics).register(on: router)
        OperationsRoutes(service: service, metrics: metrics, store: store).register(on: router)
        return router
    }

    /// Builds the HTTP application over `store` (whose own background work the caller runs).
    ///
    /// - Parameter onRunning: called with the bound port once the server listens.
    public static func makeApplication(
        configuration: ServerConfiguration,
        store: any KeyValueStore,
        logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let service = ConfigService(store: store, configuration: configuration.config)
        let metrics = ServerMetrics()
        let router = makeRouter(service: service, store: store, metrics: metrics)
        return Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: [ExpectContinueHandler()])),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "capstan"),
            services: [
                CompactionService(
                    store: store, keep: configuration.compactionKeep, interval: configuration.compactionInterval,
                    lockTTL: configuration.lockTTL, logger: logger),
            ],
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? configuration.port) },
            logger: logger
        )
    }

    /// Opens the configured store and serves until SIGTERM or SIGINT.
    public static func run(
        configuration: ServerConfiguration,
        logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws {
        let store = try await configuration.storeLocation.open(
            prefix: configuration.storePrefix, timeout: configuration.storeTimeout, logger: logger)
        do {
            let app = makeApplication(configuration: configuration, store: store, logger: logger, onRunning: onRunning)
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
