import ArgumentParser
import CapstanCore

struct NamespaceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ns",
        abstract: "Manage namespaces (environments or tenants that hold config keys).",
        subcommands: [Create.self, List.self, Remove.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a namespace.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Namespace name: a-z, 0-9 and -, up to 63 characters.") var name: String
        @Option(help: "What the namespace is for.") var description: String?

        func validate() throws {
            do { try NamespaceName.validate(name) } catch { throw ValidationError(error.message) }
        }

        func run() async throws {
            let info = try await global.client().createNamespace(name, description: description)
            try Output.print(info, as: global.output) { "created namespace \(info.name)\n" }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List namespaces.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let list = try await global.client().namespaces()
            try Output.print(list.items, as: global.output) {
                Output.table(
                    ["NAME", "CONFIGS", "CREATED BY", "CREATED", "DESCRIPTION"],
                    list.items.map {
                        [$0.name, String($0.configCount ?? 0), $0.createdBy, Output.time($0.createdAt), $0.description]
                    })
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete an empty namespace.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Namespace name.") var name: String

        func validate() throws {
            do { try NamespaceName.validate(name) } catch { throw ValidationError(error.message) }
        }

        func run() async throws {
            try await global.client().deleteNamespace(name)
            if global.output == .table { print("deleted namespace \(name)") }
        }
    }
}
