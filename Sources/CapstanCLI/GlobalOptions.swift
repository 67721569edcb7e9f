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

    @Option(name: [.customShort("o"), .customLong("output")], help: "Output format: table, json or yaml.")
    var output: OutputFormat = .table

    var serverURL: String {
        server ?? ProcessInfo.processInfo.environment["CAPSTAN_ADDR"].flatMap { $0.isEmpty ? nil : $0 }
            ?? CapstanClient.defaultServer
    }

    func client() -> CapstanClient {
        let environment = ProcessInfo.processInfo.environment
        let author = environment["CAPSTAN_AUTHOR"] ?? environment["USER"] ?? environment["LOGNAME"] ?? "cli"
        return CapstanClient(server: serverURL, author: author)
    }
}
