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

    @Option(
        name: .customLong("ca-cert"),
        help: ArgumentHelp(
            "CA certificate (PEM file) to verify an https:// server by (default: $CAPSTAN_CA_CERT, else the one capstan login saved for the server).",
            valueName: "file"))
    var caCertificate: String?

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
        if let path = caCertificate ?? Self.environment("CAPSTAN_CA_CERT") {
            try client.trust(caCertificatePEM: try Self.readCA(path))
        } else if let pem = credentials.servers[client.server]?.caCertificate {
            try client.trust(caCertificatePEM: pem)
        }
        return client
    }

    /// The PEM text of a CA certificate file.
    static func readCA(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("--ca-cert / CAPSTAN_CA_CERT: cannot read \(path)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    static func environment(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }
}
