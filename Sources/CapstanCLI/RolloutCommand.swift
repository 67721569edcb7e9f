import ArgumentParser
import CapstanClient
import CapstanCore
import Foundation

struct RolloutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollout",
        abstract: "Gray-release config changes to a growing share of nodes, gated on their health.",
        discussion: """
            A rollout holds candidate versions of config keys (capstan config put KEY FILE --rollout NAME) that \
            only its members see: the nodes its selector picks whose name hashes under the current step's share \
            (sticky: widening keeps every member), and API readers that name themselves with \
            X-Capstan-Client: NAME; k=v. Promote makes the candidates the main versions; abort sends members \
            back to the main versions. A plain write to a key under rollout is refused (409) unless --force \
            aborts the rollout first.
            """,
        subcommands: [Start.self, List.self, Show.self, Status.self, Step.self, Promote.self, Abort.self, Pause.self, Resume.self]
    )

    static func summary(_ info: RolloutInfo) -> String {
        let candidates = info.candidates.map { "\($0.kind == .template ? "template " : "")\($0.name)\($0.action == .delete ? " (delete)" : "")" }
        return "rollout \(info.name): \(info.state.rawValue), step \(info.step + 1)/\(info.spec.steps.count) (\(info.spec.describe(step: info.step)))"
            + (candidates.isEmpty ? ", no candidates yet" : ", candidates: \(candidates.joined(separator: ", "))") + "\n"
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a rollout at its first step; then write candidates with config put --rollout NAME.",
            discussion: """
                Example: capstan rollout start web-v2 --selector role=web --percent 10 --steps 10,50,100 \
                --step-interval 5m --gate check=http-ok --on-failure abort
                """)

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Rollout name: lowercase letters, digits, -, . and _.") var name: String
        @Option(name: [.customShort("s"), .long], help: "Nodes (and identified clients) it may reach; default: all.") var selector = ""
        @Option(help: "Share of the selected nodes the first step reaches, 1 to 100.") var percent: Int?
        @Option(help: "Number of nodes the first step reaches, instead of --percent.") var nodes: Int?
        @Option(help: "Every step, comma-separated and increasing (percentages, or node counts with --nodes).") var steps: String?
        @Option(help: "Move to the next step by itself after this long, when the gates hold (e.g. 5m).") var stepInterval: String?
        @Option(help: "A health gate; repeat for more: check=NAME, template-failures=N, unhealthy=N, metric:load1<4.")
        var gate: [String] = []
        @Option(help: "What a failing gate does: pause or abort.") var onFailure = "pause"
        @Flag(help: "Promote by itself once the last step's gates held for --step-interval.") var autoPromote = false

        func spec() throws -> RolloutSpec {
            guard percent == nil || nodes == nil else { throw ValidationError("give --percent or --nodes, not both") }
            var list: [Int] = []
            if let steps {
                for item in steps.split(separator: ",", omittingEmptySubsequences: false) {
                    guard let value = Int(item.trimmingCharacters(in: .whitespaces)) else {
                        throw ValidationError("--steps \(steps.quoted): \(String(item).quoted) is not a whole number")
                    }
                    list.append(value)
                }
            }
            let first = percent ?? nodes
            if let first {
                if list.isEmpty { list = [first] } else if list[0] != first {
                    guard first < list[0] else { throw ValidationError("--steps must begin with the first step, \(first)") }
                    list.insert(first, at: 0)
                }
            }
            guard !list.isEmpty else { throw ValidationError("give --percent or --nodes: how many nodes the first step reaches") }
            guard let policy = RolloutSpec.FailurePolicy(rawValue: onFailure) else {
                throw ValidationError("--on-failure must be pause or abort; got \(onFailure)")
            }
            var interval: Int64?
            if let stepInterval {
                do { interval = try DurationParser.parse(stepInterval).milliseconds } catch {
                    throw ValidationError("--step-interval: \(error)")
                }
            }
            let spec = RolloutSpec(
                selector: selector, percentSteps: nodes == nil ? list : nil, nodeSteps: nodes == nil ? nil : list,
                stepIntervalMilliseconds: interval, gates: gate, onFailure: policy, autoPromote: autoPromote)
            return spec
        }

        func validate() throws {
            _ = try spec()
        }

        func run() async throws {
            let info = try await global.client().startRollout(name, try spec())
            try Output.print(info, as: global.output) { RolloutCommand.summary(info) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List rollouts, open and closed.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let list = try await global.client().rollouts()
            try Output.print(list.items, as: global.output) {
                Output.table(
                    ["NAME", "STATE", "STEP", "SELECTOR", "CANDIDATES", "STARTED"],
                    list.items.map {
                        [
                            $0.name, $0.state.rawValue, "\($0.step + 1)/\($0.spec.steps.count) (\($0.spec.describe(step: $0.step)))",
                            $0.spec.selector.isEmpty ? "(all)" : $0.spec.selector, $0.candidates.map(\.name).joined(separator: ","),
                            Output.time($0.createdAt),
                        ]
                    })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a rollout: its spec, candidates and every transition.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Rollout name.") var name: String

        func run() async throws {
            let info = try await global.client().rollout(name)
            try Output.print(info, as: global.output) {
                var text = RolloutCommand.summary(info)
                text += "selector: \(info.spec.selector.isEmpty ? "(all)" : info.spec.selector)\n"
                text += "steps: \(info.spec.steps.indices.map { info.spec.describe(step: $0) }.joined(separator: ", "))"
                text += info.spec.stepIntervalMilliseconds.map { ", every \(DurationParser.format(.milliseconds($0)))" } ?? ""
                text += info.spec.autoPromote ? ", then promote\n" : "\n"
                if !info.spec.gates.isEmpty {
                    text += "gates: \(info.spec.gates.joined(separator: ", ")) (on failure: \(info.spec.onFailure.rawValue))\n"
                }
                text += "\n" + Output.table(
                    ["CANDIDATE", "ACTION", "REVISION", "AUTHOR", "TIME"],
                    info.candidates.map { [$0.name, $0.action.rawValue, String($0.revision), $0.author, Output.time($0.time)] })
                text += "\n" + Output.table(
                    ["TIME", "TRANSITION", "ACTOR", "DETAIL"],
                    info.transitions.map { [Output.time($0.time), $0.action, $0.actor, $0.detail] })
                return text
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a rollout's step, its members, each selected node's state, and its gates.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Rollout name.") var name: String

        func run() async throws {
            let status = try await global.client().rolloutStatus(name)
            try Output.print(status, as: global.output) {
                var text = RolloutCommand.summary(status.rollout)
                text += "members: \(status.members) of \(status.nodes.count) selected nodes\n"
                for gate in status.gates {
                    text += "gate \(gate.gate): \(gate.passing ? "holds" : "FAILS") (\(gate.detail))\n"
                }
                text += "\n" + Output.table(
                    ["NODE", "MEMBER", "STATUS", "TEMPLATES"],
                    status.nodes.map { node in
                        [
                            node.name, node.member ? "yes" : "no", node.connected ? node.status.rawValue : "\(node.status.rawValue), offline",
                            (node.templates ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.rawValue)" }.joined(separator: ", "),
                        ]
                    })
                return text
            }
        }
    }

    /// The transitions share their shape: a name, an optional reason.
    struct Transition {
        static func run(_ global: GlobalOptions, _ name: String, _ action: String, reason: String? = nil) async throws {
            let info = try await global.client().rollout(name, action, reason: reason)
            try Output.print(info, as: global.output) { RolloutCommand.summary(info) }
        }
    }

    struct Step: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move to the next step now (else it comes after --step-interval, when the gates hold).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Rollout name.") var name: String
        func run() async throws { try await Transition.run(global, name, "step") }
    }

    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make every candidate the main version (new history entries that name the rollout).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Rollout name.") var name: String
        @Option(help: "Why; kept in the rollout's transitions.") var reason: String?
        func run() async throws { try await Transition.run(global, name, "promote", reason: reason) }
    }

    struct Abort: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send members back to the main versions; the candidates stay in history as abandoned.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Rollout name.") var name: String
        @Option(help: "Why; kept in the rollout's transitions.") var reason: String?
        func run() async throws { try await Transition.run(global, name, "abort", reason: reason) }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop the steps where they are; members keep the candidates.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Rollout name.") var name: String
        @Option(help: "Why; kept in the rollout's transitions.") var reason: String?
        func run() async throws { try await Transition.run(global, name, "pause", reason: reason) }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let a paused rollout's steps move on again (its step interval counts from now).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Rollout name.") var name: String
        func run() async throws { try await Transition.run(global, name, "resume") }
    }
}
