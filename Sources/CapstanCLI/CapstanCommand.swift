import ArgumentParser

/// `capstan`: the server and the command-line client in one binary.
public struct CapstanCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "capstan",
        abstract: "Configuration center and fleet orchestrator.",
        discussion: """
            Start a throwaway server with `capstan server --dev`, then use the client commands
            against it. The client talks to --server, or $CAPSTAN_ADDR, or http://127.0.0.1:8740.
            """,
        version: CapstanVersion.current,
        subcommands: [ServerCommand.self, NamespaceCommand.self, ConfigCommand.self, VersionCommand.self]
    )

    public init() {}
}

public enum CapstanVersion {
    public static let current = "0.1.0"
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version of this binary.")

    func run() {
        print(CapstanVersion.current)
    }
}
