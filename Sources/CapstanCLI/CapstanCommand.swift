import ArgumentParser
import CapstanCore

/// `capstan`: the server and the command-line client in one binary.
public struct CapstanCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "capstan",
        abstract: "Configuration center and fleet orchestrator.",
        discussion: """
            Start a throwaway server with `capstan server --dev`, then use the client commands \
            against it. The client talks to --server, or $CAPSTAN_ADDR, or the server capstan login saved, or \
            http://127.0.0.1:8740, with the token from --token, or $CAPSTAN_TOKEN, or the one saved for that server.
            """,
        version: CapstanVersion.current,
        subcommands: [
            ServerCommand.self, AgentCommand.self, NamespaceCommand.self, ConfigCommand.self, NodeCommand.self, TemplateCommand.self,
            JobCommand.self, ScheduleCommand.self, CheckCommand.self, RolloutCommand.self, TokenCommand.self, RoleCommand.self, AuditCommand.self,
            LoginCommand.self, StoreCommand.self,
            VersionCommand.self,
        ]
    )

    public init() {}
}


struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version of this binary.")

    func run() {
        print(CapstanVersion.current)
    }
}

extension CapstanCommand {
    /// Parses the arguments and runs the command. Errors end up as one line on standard error
    /// and a non-zero exit status: 64 for usage errors, 1 for failures.
    public static func runMain(_ arguments: [String]? = nil) async -> Int32 {
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                // --help and --version are answers, not errors.
                print(fullMessage(for: error))
                return 0
            }
            var message = message(for: error).split(whereSeparator: \.isNewline).first.map(String.init) ?? "\(error)"
            if code == .validationFailure, !message.contains("--help") {
                message += " (see capstan --help)"
            }
            printError("capstan: \(message)")
            return code == .validationFailure ? 64 : code.rawValue
        }
    }
}
