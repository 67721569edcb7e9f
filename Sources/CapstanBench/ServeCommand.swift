import ArgumentParser
import AsyncHTTPClient
import CapstanServer
import Logging

/// Runs a Capstan server; the benchmark starts its own binary with this to get a separate process.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the Capstan server under test (used by `store`).",
        shouldDisplay: false)

    @Option(help: "Directory for the store.") var dataDir: String
    @Option(help: "Port to listen on, on 127.0.0.1.") var port: Int
    @Option(help: "Log level of the server.") var logLevel: String = "warning"
    @Option(help: "Store: sqlite:PATH or etcd://HOST:PORT (default: SQLite in --data-dir).") var store: String?
    @Option(help: "Key prefix in an etcd store.") var storePrefix: String = ""

    /// The join token of the server under test (the simulated agents of `agents` enroll with it).
    static let benchJoinToken = "capstan-bench-join-token"
    /// The root API token of the server under test: every benchmark request carries it.
    static let benchRootToken = "capstan-bench-root-token"

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be 1-65535") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level is not a log level") }
    }

    func run() async throws {
        var configuration = ServerConfiguration()
        configuration.host = "127.0.0.1"
        configuration.port = port
        configuration.dataDirectory = dataDir
        configuration.logLevel = Logger.Level(rawValue: logLevel) ?? .warning
        if let store { configuration.store = try StoreLocation(parsing: store) }
        configuration.storePrefix = storePrefix
        configuration.joinToken = Self.benchJoinToken
        configuration.rootToken = Self.benchRootToken
        // One process stands for a fleet and its operators: no rate limits in the way.
        configuration.limits.requests = .off
        configuration.limits.authFailures = .off
        configuration.limits.enrollments = .off
        var logger = Logger(label: "capstan.bench.server")
        logger.logLevel = configuration.logLevel
        try await CapstanServer.run(configuration: configuration, logger: logger)
    }
}

extension HTTPClientRequest {
    /// A request to the Capstan server under test, with its root token.
    static func capstan(_ url: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Authorization", value: "Bearer \(ServeCommand.benchRootToken)")
        return request
    }
}
