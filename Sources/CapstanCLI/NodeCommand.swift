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
        subcommands: [List.self, Show.self, Label.self, Remove.self, Top.self, Metrics.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List nodes: name, status, checks, labels, last seen, agent version.")

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
                    ["NAME", "STATUS", "CHECKS", "LABELS", "LAST SEEN", "AGENT"],
                    list.items.map { node in
                        [
                            node.name, node.status.rawValue + (node.connected ? "" : " (disconnected)"), NodeCommand.checks(node.checks),
                            NodeCommand.labels(node.labels), node.lastSeen.map(Output.time) ?? "never", node.agentVersion,
                        ]
                    })
            }
        }
    }

    /// `2 passing, 1 critical (db-port)`, or `-` without checks.
    static func checks(_ checks: [String: CheckStatus]?) -> String {
        guard let checks, !checks.isEmpty else { return "-" }
        var parts: [String] = []
        for status in CheckStatus.allCases {
            let names = checks.filter { $0.value == status }.keys.sorted()
            guard !names.isEmpty else { continue }
            parts.append("\(names.count) \(status.rawValue)" + (status == .critical ? " (\(names.joined(separator: ", ")))" : ""))
        }
        return parts.joined(separator: ", ")
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
                    ("CPUs", String(facts.cpuCount)), ("Memory", ByteSize.human(Int(facts.memoryBytes))),
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
                if let checks = node.checks, !checks.isEmpty {
                    text += "\n" + Output.table(["CHECK", "STATUS"], checks.sorted { $0.key < $1.key }.map { [$0.key, $0.value.rawValue] })
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

    struct Top: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Nodes by their latest host metrics: CPU, load, memory, fullest disk, network.",
            discussion: "Agents send a sample every --metrics-interval of the server (15 s by default).")

        enum Order: String, ExpressibleByArgument, CaseIterable {
            case cpu, load, memory, disk, name
        }

        @OptionGroup var global: GlobalOptions
        @Option(name: [.short, .long], help: "Only the nodes this selector picks.") var selector: String = ""
        @Option(help: "Sort by cpu, load, memory, disk or name (the largest first).") var sort: Order = .cpu

        func validate() throws {
            do { _ = try Selector(selector) } catch { throw ValidationError("--selector: \(error.description)") }
        }

        func run() async throws {
            let client = try global.client()
            var entries = try await client.nodeTop().items
            if !selector.isEmpty {
                let picked = Set(try await client.nodes(selector: selector).items.map(\.name))
                entries = entries.filter { picked.contains($0.node) }
            }
            func key(_ entry: NodeTop.Entry) -> Double {
                let sample = entry.sample
                switch sort {
                case .cpu: return sample.cpuPercent ?? -1
                case .load: return sample.load1
                case .memory: return sample.memoryTotalBytes > 0 ? Double(sample.memoryUsedBytes) / Double(sample.memoryTotalBytes) : 0
                case .disk: return sample.fullestDiskPercent ?? -1
                case .name: return 0
                }
            }
            entries.sort { sort == .name ? $0.node < $1.node : key($0) > key($1) }
            try Output.print(entries, as: global.output) {
                Output.table(
                    ["NODE", "CPU", "LOAD", "MEMORY", "SWAP", "DISK", "RX/S", "TX/S", "SAMPLED"],
                    entries.map { entry in
                        let sample = entry.sample
                        let rates = sample.networkRates
                        return [
                            entry.node, sample.cpuPercent.map { String(format: "%.1f%%", $0) } ?? "-",
                            String(format: "%.2f", sample.load1),
                            "\(ByteSize.human(Int(sample.memoryUsedBytes)))/\(ByteSize.human(Int(sample.memoryTotalBytes)))",
                            sample.swapTotalBytes > 0 ? ByteSize.human(Int(sample.swapUsedBytes)) : "-",
                            sample.fullestDiskPercent.map { String(format: "%.0f%%", $0) } ?? "-",
                            rates.rx.map { ByteSize.human(Int($0)) } ?? "-", rates.tx.map { ByteSize.human(Int($0)) } ?? "-",
                            Output.time(sample.time),
                        ]
                    })
            }
        }
    }

    struct Metrics: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A node's latest host metrics, and the last hour's CPU, load and memory.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Node name.") var name: String

        func run() async throws {
            let info = try await global.client().nodeMetrics(name)
            try Output.print(info, as: global.output) {
                guard let sample = info.latest else {
                    return "no metrics from \(info.node) yet (its agent sends them every metrics interval, to the replica it is connected to)\n"
                }
                var text = "\(info.node) at \(Output.time(sample.time))\n"
                text += "cpu \(sample.cpuPercent.map { String(format: "%.1f%%", $0) } ?? "-")"
                text += ", load \(String(format: "%.2f %.2f %.2f", sample.load1, sample.load5, sample.load15))\n"
                text += "memory \(ByteSize.human(Int(sample.memoryUsedBytes))) of \(ByteSize.human(Int(sample.memoryTotalBytes)))"
                text += ", swap \(ByteSize.human(Int(sample.swapUsedBytes))) of \(ByteSize.human(Int(sample.swapTotalBytes)))\n"
                text += Output.table(
                    ["MOUNT", "DEVICE", "TYPE", "USED", "SIZE"],
                    sample.disks.map { [$0.mount, $0.device, $0.fsType, ByteSize.human(Int($0.usedBytes)), ByteSize.human(Int($0.totalBytes))] })
                text += Output.table(
                    ["INTERFACE", "RX/S", "TX/S"],
                    sample.network.map { [$0.name, $0.rxBytesPerSecond.map { ByteSize.human(Int($0)) } ?? "-", $0.txBytesPerSecond.map { ByteSize.human(Int($0)) } ?? "-"] })
                let cpu = info.history.compactMap(\.cpuPercent)
                let load = info.history.map(\.load1)
                if !cpu.isEmpty || !load.isEmpty {
                    text += "last hour (\(info.history.count) samples): "
                    if !cpu.isEmpty { text += String(format: "cpu avg %.1f%% max %.1f%%, ", cpu.reduce(0, +) / Double(cpu.count), cpu.max() ?? 0) }
                    text += String(format: "load1 avg %.2f max %.2f\n", load.reduce(0, +) / Double(max(1, load.count)), load.max() ?? 0)
                }
                return text
            }
        }
    }
}
