import CapstanServer
import CapstanStore
import Foundation
import Hummingbird
import Logging

/// A Capstan HTTP server running in-process on a free loopback port, over a fresh store.
public struct LiveServer: Sendable {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    public let url: String
    public let store: any KeyValueStore
    /// The root token the server was bootstrapped with.
    public var token: String { TestAuth.rootToken }

    /// Runs a server for the duration of `body`, then stops it and removes its data.
    public static func with<T: Sendable>(
        engine: StoreEngine = .sqlite,
        configuration: ServerConfiguration = ServerConfiguration(),
        _ body: @Sendable (LiveServer) async throws -> T
    ) async throws -> T {
        try await engine.withStore { store in
            var configuration = configuration
            configuration.host = "127.0.0.1"
            configuration.port = 0
            _ = try await AccessControl.bootstrap(store: store, given: TestAuth.rootToken)
            let (ports, portSink) = AsyncStream.makeStream(of: Int.self)
            var logger = Logger(label: "capstan.test")
            logger.logLevel = .warning
            let app = CapstanServer.makeApplication(configuration: configuration, store: store, logger: logger) { port in
                portSink.yield(port)
                portSink.finish()
            }
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    defer { portSink.finish() }
                    try await app.run()
                }
                defer { group.cancelAll() }
                var iterator = ports.makeAsyncIterator()
                guard let port = await iterator.next() else {
                    throw TimeoutError(what: "server to listen", timeout: .zero)
                }
                return try await body(LiveServer(url: "http://127.0.0.1:\(port)", store: store))
            }
        }
    }
}
