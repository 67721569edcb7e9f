import ArgumentParser
import CapstanCore
import Foundation

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "List and manage the nodes whose agents enrolled.",
        discussion: """
            Selectors pick nodes by label and name: env=prod,role in (web,api),!canary,zone!=b,name=web-* \
            (k=v, k!=v, k in (a,b), k notin (a,b), k, !k; name=GLOB matches the node name; commas mean and).
            """,
        subcommands: [List.self, Show.self, Label.self, Remove.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List nodes: name, status, labels, last seen, agent version.")

        @OptionGroup var global: GlobalOptions
        @Option(name: [.short, .long], help: "Only the nodes this selector picks, e.g. 'env=prod,role in (web,api)'.")
        var selector: String = ""

        func validate() throws {
            do { _ = try Selector(selector) } catch { throw ValidationError(error.description) }
        }

        func run() async throws {
            let list = try await global.client().nodes(selector: selector)
            try Output.print(list.items, as: global.output) {
                Output.table(
                    ["NAME", "STATUS", "LABELS", "LAST SEEN", "AGENT"],
                    list.items.map { node in
                        [
                            node.name, node.status.rawValue + (node.connected ? "" : " (disconnected)"),
                            NodeCommand.labels(node.labels), node.lastSeen.map(Output.time) ?? "never", node.agentVersion,
                        ]
                    })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a node: status, facts, labels.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Node name.") var name: String

        func run() async throws {
            let node = try await global.client().node(name)
            try Output.print(node, as: global.output) {
                let facts = node.facts
                let rows: [(String, String)] = [
                    ("Name", node.name), ("ID", node.id),
                    ("Status", "\(node.status.rawValue) since \(Output.time(node.statusSince))"),
                    ("Connected", node.connected ? "yes" : "no"),
                    ("Last seen", node.lastSeen.map(Output.time) ?? "never"),
                    ("Labels", NodeCommand.labels(node.labels)),
                    ("  from the agent", NodeCommand.labels(node.agentLabels)),
                    ("  set on the server", NodeCommand.labels(node.serverLabels)),
                    ("Hostname", facts.hostname), ("OS", facts.os), ("Kernel", facts.kernel), ("Arch", facts.arch),
                    ("CPUs", String(facts.cpuCount)), ("Memory", ByteSize.format(Int(facts.memoryBytes))),
                    ("Addresses", facts.addresses.joined(separator: ", ")),
                    ("Agent version", facts.agentVersion), ("Booted", facts.bootTime.map(Output.time) ?? "unknown"),
                    ("Enrolled", Output.time(node.enrolledAt)),
                ]
                let width = rows.map(\.0.count).max() ?? 0
                var text = rows.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }
                    .joined(separator: "\n") + "\n"
                if let templates = node.templates, !templates.isEmpty {
                    text += "\n" + Output.table(
                        ["TEMPLATE", "STATE", "REVISION", "ERROR"],
                        templates.map { [$0.name, $0.state.rawValue, $0.revision.map(String.init) ?? "-", $0.error ?? ""] })
                }
                return text
            }
        }
    }

    struct Label: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set (k=v) and remove (k-) labels on the server; they win over the agent's own.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Node name.") var name: String
        @Argument(help: "Changes: KEY=VALUE sets, KEY- removes.") var changes: [String]

        func validate() throws {
            guard !changes.isEmpty else { throw ValidationError("give at least one KEY=VALUE or KEY-") }
            do { _ = try Labels.parseChanges(changes) } catch { throw ValidationError(error.message) }
        }

        func run() async throws {
            let node = try await global.client().labelNode(name, try Labels.parseChanges(changes))
            try Output.print(node, as: global.output) { "\(node.name): \(NodeCommand.labels(node.labels))\n" }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Remove a node: its identity stops working and its agent is disconnected.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Node name.") var name: String

        func run() async throws {
            try await global.client().removeNode(name)
            if global.output == .table { print("removed node \(name)") }
        }
    }

    static func labels(_ labels: [String: String]) -> String {
        labels.isEmpty ? "-" : labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
}
