import ArgumentParser
import CapstanClient
import Foundation

/// How a client command prints its result.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case table, json, yaml
}

/// Options every client command takes.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Capstan server URL, or several separated by commas (replicas: the next is used when one cannot be reached) (default: $CAPSTAN_ADDR or http://127.0.0.1:8740).",
            valueName: "url"))
    var server: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "API token (default: $CAPSTAN_TOKEN, else the one capstan login or server --dev saved for the server).", valueName: "token"))
    var token: String?

    @Option(name: [.customShort("o"), .customLong("output")], help: "Output format: table, json or yaml.")
    var output: OutputFormat = .table

    /// The server: --server, $CAPSTAN_ADDR, the credentials file's current server, or the default.
    func serverURL(_ credentials: Credentials) -> String {
        server ?? Self.environment("CAPSTAN_ADDR") ?? credentials.current ?? CapstanClient.defaultServer
    }

    func client() throws -> CapstanClient {
        let environment = ProcessInfo.processInfo.environment
        let author = environment["CAPSTAN_AUTHOR"] ?? environment["USER"] ?? environment["LOGNAME"] ?? "cli"
        let credentials = try Credentials.load()
        var client = CapstanClient(server: serverURL(credentials), author: author)
        client.token = token ?? Self.environment("CAPSTAN_TOKEN") ?? credentials.servers[client.server]?.token
        return client
    }

    static func environment(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }
}
