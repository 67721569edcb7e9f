import ArgumentParser
import CapstanCore
import Foundation

struct RoleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "role",
        abstract: "Define what tokens may do.",
        discussion: """
            A role is a list of rules RESOURCE:SCOPE:ACTIONS. Resources: config, namespace, node, template, job, \
            schedule, check, audit, token, role, or * for all. The scope is a name prefix (for config, of \
            NAMESPACE/PATH: prod/order-service/), or for job a node selector (env=staging) that limits where jobs \
            run; empty means all. Actions: read, write, delete, run, admin (all of them) and, for config, \
            read-secret. Whatever no rule grants is denied. Built-in roles: admin (everything) and viewer (reads \
            everything but secrets' values).
            """,
        subcommands: [Put.self, List.self, Show.self, Remove.self]
    )

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or replace a role.",
            discussion: """
                Example: capstan role put order-dev --rule 'config:prod/order-service/:read,write' --rule 'job:env=staging:run,read'
                """)

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Role name: lowercase letters, digits, -, . and _.") var name: String
        @Option(name: .customLong("rule"), help: "A rule RESOURCE:SCOPE:ACTIONS; repeat for more.") var rules: [String] = []
        @Option(help: "What the role is for.") var description: String = ""

        func validate() throws {
            do { try Role.validate(name: name) } catch { throw ValidationError(error.message) }
            guard !rules.isEmpty else { throw ValidationError("give at least one --rule, e.g. --rule 'config:dev/:read'") }
            for rule in rules {
                do { _ = try AccessRule(parsing: rule) } catch { throw ValidationError("--rule: \(error.message)") }
            }
        }

        func run() async throws {
            let role = try await global.client().putRole(name, RoleSpec(description: description, rules: rules))
            try Output.print(role, as: global.output) { "saved role \(role.name) with \(role.rules.count) rule\(role.rules.count == 1 ? "" : "s")\n" }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List roles and their rules.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let roles = try await global.client().roles()
            try Output.print(roles, as: global.output) {
                Output.table(
                    ["NAME", "RULES", "DESCRIPTION"],
                    roles.map { [$0.name + ($0.builtIn ? " (built in)" : ""), $0.rules.map(\.description).joined(separator: " "), $0.description] })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a role's rules.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Role name.") var name: String

        func run() async throws {
            let role = try await global.client().role(name)
            try Output.print(role, as: global.output) {
                "\(role.name)\(role.description.isEmpty ? "" : ": \(role.description)")\n" + role.rules.map { "  \($0)\n" }.joined()
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a role no token holds.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Role name.") var name: String

        func run() async throws {
            try await global.client().removeRole(name)
            if global.output == .table { print("removed role \(name)") }
        }
    }
}
