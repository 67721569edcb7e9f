import ArgumentParser
import CapstanAgent
import CapstanCore
import Foundation
import Logging

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run the node agent: enroll with a server, then keep its connection and heartbeats.",
        discussion: """
            The first start enrolls the node with --join-token (the server prints it) and keeps the node's \
            identity in --data-dir; later starts need no token. The agent holds one WebSocket to the \
            server, sends the host's facts and its labels, and a heartbeat every interval the server sets. \
            When the connection drops it retries with exponential backoff and full jitter, up to 30 s apart.
            """)

    @Option(
        help: ArgumentHelp(
            "Server URL (default: $CAPSTAN_ADDR or http://127.0.0.1:8740).", valueName: "url"))
    var server: String?

    @Option(
        help: """
            The server's join token, as the server prints it; needed for the first start only. Over https:// it pins the server's CA fingerprint (cj1-...), and the agent refuses a server whose CA is another.
            """)
    var joinToken: String?

    @Option(
        name: .customLong("ca-cert"),
        help: ArgumentHelp("CA certificate (PEM file) to verify an https:// server by, instead of the join token's pin.", valueName: "file"))
    var caCertificate: String?

    @Option(help: "Directory for the agent's identity and state, kept 0700 (the identity and state files 0600).")
    var dataDir: String = "capstan-agent"

    @Option(help: "Node name (default: the host name, lowercased).") var name: String?

    @Option(name: .customLong("label"), help: "A label, KEY=VALUE; repeat for more.") var labels: [String] = []

    @Option(
        name: .customLong("allow-path"),
        help: "A directory templates may write into; repeat for more (default: none, so templates are refused).")
    var allowedPaths: [String] = []

    @Flag(
        help: """
            Run no command at all: jobs are refused, templates with --check or --reload fail unapplied, \
            command checks are critical; templates without commands still apply.
            """)
    var noExec = false

    @Option(
        name: .customLong("allow-command"),
        help: ArgumentHelp(
            "Run only commands (jobs, template checks and reloads, command checks) that start this program, never through a shell; repeat for more. An absolute path allows that file; a bare name allows the file PATH finds for it when the agent starts. A command's program is found the same way (a bare name on PATH) and must be one of these files.",
            valueName: "program"))
    var allowedCommands: [String] = []

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func validate() throws {
        if let joinToken {
            do { _ = try JoinToken(parsing: joinToken) } catch { throw ValidationError("--join-token: \(error.message)") }
        }
        if let name {
            do { try NodeName.validate(name) } catch { throw ValidationError("--name: \(error.message)") }
        }
        do { _ = try Labels.parseAssignments(labels) } catch { throw ValidationError("--label: \(error.message)") }
        if noExec, !allowedCommands.isEmpty {
            throw ValidationError("--no-exec refuses every command; it cannot be combined with --allow-command")
        }
        if allowedCommands.contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw ValidationError("--allow-command needs a program name or path")
        }
        do { _ = try ExecPolicy.allowing(allowedCommands) } catch { throw ValidationError(error.message) }
        for path in allowedPaths where !path.hasPrefix("/") {
            throw ValidationError("--allow-path must be an absolute directory; got \(path)")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical; got \(logLevel)")
        }
        let url = serverURL
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw ValidationError("--server must be an http:// or https:// URL; got \(url)")
        }
    }

    var serverURL: String {
        var url = server ?? ProcessInfo.processInfo.environment["CAPSTAN_ADDR"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "http://127.0.0.1:8740"
        // The agent talks to one replica; a list (as clients take) gives the first.
        if let comma = url.firstIndex(of: ",") { url = String(url[..<comma]) }
        while url.hasSuffix("/") { url.removeLast() }
        return url
    }

    func run() async throws {
        var logger = Logger(label: "capstan.agent")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        var configuration = AgentConfiguration(server: serverURL, joinToken: joinToken, dataDirectory: dataDir, name: name)
        configuration.labels = try Labels.parseAssignments(labels)
        configuration.caCertificateFile = caCertificate
        configuration.allowedPaths = allowedPaths
        configuration.execPolicy = noExec ? .none : allowedCommands.isEmpty ? .all : try ExecPolicy.allowing(allowedCommands)
        let agent = Agent(configuration: configuration, logger: logger) { event in
            printLine("agent \(event)")
        }
        // SIGTERM and SIGINT end the process as they are: the identity file is written
        // atomically and nothing else needs closing.
        do {
            try await agent.run()
        } catch {
            await agent.shutdown()
            throw error
        }
        await agent.shutdown()
    }
}
