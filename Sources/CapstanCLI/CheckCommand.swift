import ArgumentParser
import CapstanCore
import Foundation

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Health checks the agents of the picked nodes run: HTTP, TCP or a command.",
        discussion: """
            A check is critical after --failures-before-critical failures in a row and passing after \
            --successes-before-passing successes in a row (pending until then). node ls shows each node's \
            checks; job run --only-healthy skips nodes with a critical check.
            """,
        subcommands: [Put.self, List.self, Show.self, Remove.self]
    )

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or replace a check.",
            discussion: "Example: capstan check put web-up -s role=web --http http://127.0.0.1:8080/healthz --interval 10s")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Check name: lowercase letters, digits, -, . and _.") var name: String
        @Option(name: [.short, .long], help: "Nodes that run the check (empty: every node).") var selector: String = ""
        @Option(help: "GET this URL; a 2xx answer passes.") var http: String?
        @Option(help: "Connect to HOST:PORT; a connection passes.") var tcp: String?
        @Option(help: "Run this command; exit status 0 passes.") var command: String?
        @Flag(help: "Run --command through /bin/sh -c instead of as argv.") var shell = false
        @Option(help: "How often the check runs.") var interval: String = "10s"
        @Option(help: "How long one run may take.") var timeout: String = "2s"
        @Option(help: "Failures in a row that make the check critical.") var failuresBeforeCritical: Int = 3
        @Option(help: "Successes in a row that make it passing.") var successesBeforePassing: Int = 2

        func spec() throws -> CheckSpec {
            let given = [("--http", http, CheckSpec.Kind.http), ("--tcp", tcp, .tcp), ("--command", command, .command)].filter { $0.1 != nil }
            guard given.count == 1, let (_, target, kind) = given.first, let target else {
                throw ValidationError("give exactly one of --http URL, --tcp HOST:PORT or --command CMD")
            }
            let intervalDuration: Duration
            let timeoutDuration: Duration
            do { intervalDuration = try DurationParser.parse(interval) } catch { throw ValidationError("--interval: \(error.message)") }
            do { timeoutDuration = try DurationParser.parse(timeout) } catch { throw ValidationError("--timeout: \(error.message)") }
            let spec = CheckSpec(
                selector: selector, kind: kind, target: target, shell: shell, intervalMilliseconds: intervalDuration.milliseconds,
                timeoutMilliseconds: timeoutDuration.milliseconds, failuresBeforeCritical: failuresBeforeCritical,
                successesBeforePassing: successesBeforePassing)
            do { try CheckSpecCheck.validate(spec) } catch { throw ValidationError(error.description) }
            return spec
        }

        func validate() throws {
            _ = try spec()
        }

        func run() async throws {
            let info = try await global.client().putCheck(name, try spec())
            try Output.print(info, as: global.output) { "saved check \(info.name)\n" }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List checks.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let list = try await global.client().checks()
            try Output.print(list.items, as: global.output) {
                Output.table(
                    ["NAME", "SELECTOR", "KIND", "TARGET", "INTERVAL", "TIMEOUT"],
                    list.items.map {
                        [
                            $0.name, $0.spec.selector.isEmpty ? "(all)" : $0.spec.selector, $0.spec.kind.rawValue, $0.spec.target,
                            "\(Duration.milliseconds($0.spec.intervalMilliseconds))", "\(Duration.milliseconds($0.spec.timeoutMilliseconds))",
                        ]
                    })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a check and its status on every node it picks.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Check name.") var name: String

        func run() async throws {
            let info = try await global.client().check(name)
            try Output.print(info, as: global.output) {
                "\(info.name): \(info.spec.kind.rawValue) \(info.spec.target)\n"
                    + Output.table(
                        ["NODE", "STATUS", "SINCE", "OUTPUT"],
                        (info.nodes ?? []).map { [$0.name, $0.status.rawValue, $0.since.map(Output.time) ?? "-", String(($0.output ?? "").prefix(80))] })
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a check; agents stop running it.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Check name.") var name: String

        func run() async throws {
            try await global.client().removeCheck(name)
            if global.output == .table { print("removed check \(name)") }
        }
    }
}

/// The checks the server makes that need no server.
enum CheckSpecCheck {
    static func validate(_ spec: CheckSpec) throws(CapstanError) {
        do { _ = try Selector(spec.selector) } catch { throw CapstanError(.invalidSelector, "--selector: \(error.description)") }
        guard spec.timeoutMilliseconds > 0, spec.timeoutMilliseconds <= spec.intervalMilliseconds else {
            throw CapstanError(.invalidArgument, "--timeout must be more than 0 and at most the interval")
        }
        guard spec.failuresBeforeCritical >= 1, spec.successesBeforePassing >= 1 else {
            throw CapstanError(.invalidArgument, "--failures-before-critical and --successes-before-passing must be at least 1")
        }
    }
}
