import ArgumentParser
import CapstanServer
import Logging

/// Measures Capstan against etcd (and its jobs against Ansible) on this machine; see BENCHMARKS.md.
@main
struct CapstanBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "CapstanBench",
        abstract: "Benchmark Capstan against etcd on this machine.",
        subcommands: [StoreCommand.self, AgentsCommand.self, RolloutCommand.self, JobsCommand.self, ServeCommand.self],
        defaultSubcommand: StoreCommand.self)

    static func main() async {
        LoggingSystem.bootstrap { label in StandardErrorLogHandler(label: label) }
        await main(nil)
    }
}
