import ArgumentParser
import CapstanCore
import CapstanServer
import Foundation
import Logging

struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Run the Capstan server.",
        discussion: """
            Serves the HTTP API on --listen, keeping its data in one SQLite file in --data-dir.
            --dev runs a throwaway server with its data in a fresh temporary directory.
            """)

    @Option(help: "Directory for the store (default: ./capstan-data; with --dev a temporary directory).")
    var dataDir: String?

    @Option(help: "Address to listen on, HOST:PORT.") var listen: String = "127.0.0.1:8740"

    @Flag(help: "Development mode: throwaway data in a temporary directory and a 'try this' banner.")
    var dev = false

    @Option(help: "Largest config content accepted, e.g. 1MiB or 512KiB.") var maxConfigSize: String = "1MiB"

    @Option(help: "Newest versions kept per config key (its first version is kept too).") var historyRetention: Int = 100

    @Option(help: "Store revisions kept for watch resume before compaction.") var compactionKeep: Int64 = 100_000

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.") var logLevel: String = "info"

    func validate() throws {
        _ = try Self.parseListen(listen)
        do { _ = try ByteSize.parse(maxConfigSize) } catch { throw ValidationError("--max-config-size: \(error.message)") }
        guard historyRetention >= 1 else { throw ValidationError("--history-retention must be at least 1") }
        guard compactionKeep >= 1 else { throw ValidationError("--compaction-keep must be at least 1") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    static func parseListen(_ text: String) throws -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":") else {
            throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:8740; got \(text)")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = "0.0.0.0" }
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--listen port must be 0-65535; got \(text)")
        }
        return (host, port)
    }

    func run() async throws {
        var configuration = ServerConfiguration()
        (configuration.host, configuration.port) = try Self.parseListen(listen)
        configuration.config.maxContentSize = try ByteSize.parse(maxConfigSize)
        configuration.config.historyRetention = historyRetention
        configuration.compactionKeep = compactionKeep
        configuration.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        if let dataDir {
            configuration.dataDirectory = dataDir
        } else if dev {
            configuration.dataDirectory = FileManager.default.temporaryDirectory
                .appendingPathComponent("capstan-dev-\(UUID().uuidString.prefix(8).lowercased())").path
        }
        var logger = Logger(label: "capstan")
        logger.logLevel = configuration.logLevel
        let dev = self.dev
        let dataDirectory = configuration.dataDirectory
        let host = configuration.host
        // A throwaway directory goes when the dev server stops cleanly.
        let removeOnExit = dev && dataDir == nil
        defer {
            if removeOnExit { try? FileManager.default.removeItem(atPath: dataDirectory) }
        }
        try await CapstanServer.run(configuration: configuration, logger: logger) { port in
            let address = "http://\(host.contains(":") ? "[\(host)]" : host):\(port)"
            if dev {
                printLine(Self.banner(address: address, dataDirectory: dataDirectory))
            } else {
                printLine("capstan server listening on \(address), data in \(dataDirectory)")
            }
        }
    }

    static func banner(address: String, dataDirectory: String) -> String {
        let serverFlag = address == "http://127.0.0.1:8740" ? "" : " --server \(address)"
        return """
            Capstan dev server listening on \(address)
            Data (throwaway): \(dataDirectory)

            Try this in another terminal:
              capstan ns create dev\(serverFlag)
              printf 'port: 8080\\n' | capstan config put dev/app.yaml\(serverFlag)
              capstan config get dev/app.yaml\(serverFlag)
              capstan config watch dev/\(serverFlag)
            """
    }
}
