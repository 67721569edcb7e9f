import ArgumentParser
import CapstanCore
import Foundation

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Read and verify the audit log.",
        discussion: """
            Every mutating request and every denied one leaves an entry: time, actor, action, resource, client \
            address, outcome, store revisions before and after, and the SHA-256 of the body (never the body). \
            Entries are chained by hash: capstan audit verify finds an edited, removed or inserted entry.
            """,
        subcommands: [List.self, Verify.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List entries, newest first.")

        @OptionGroup var global: GlobalOptions
        @Option(help: "Only entries since this time: ISO 8601 (2026-11-21T10:00:00Z) or a duration back (1h).") var since: String?
        @Option(help: "Only entries of this token id, token description or node.") var actor: String?
        @Option(help: "Only entries whose request path starts with this (/v1/config/prod/).") var resource: String?
        @Option(help: "At most this many entries.") var limit: Int = 100

        func validate() throws {
            guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be between 1 and 10000; got \(limit)") }
            if let since, ISO8601DateFormatter().date(from: since) == nil {
                _ = try ServerCommand.duration(since, flag: "--since", minimum: .zero)
            }
        }

        func run() async throws {
            let list = try await global.client().audit(since: since, actor: actor, resource: resource, limit: limit)
            try Output.print(list.items, as: global.output) {
                Output.table(
                    ["SEQ", "TIME", "ACTOR", "ACTION", "RESOURCE", "CLIENT", "STATUS"],
                    list.items.map { entry in
                        let actor =
                            switch entry.actorKind {
                            case .anonymous: "anonymous"
                            case .node: "node \(entry.actorID)"
                            case .server: "server (\(entry.actorDescription))"
                            case .token: entry.actorDescription.isEmpty ? "token \(entry.actorID)" : "\(entry.actorDescription) (\(entry.actorID))"
                            }
                        return [
                            String(entry.sequence), entry.time, actor, entry.action, "\(entry.method) \(entry.resource)", entry.client,
                            "\(entry.status) \(entry.outcome)",
                        ]
                    })
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every link of the retained chain; exit status 1 when it is broken.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let result = try await global.client().verifyAudit()
            try Output.print(result, as: global.output) {
                if result.valid {
                    let range = result.firstSequence.map { "entries \($0) to \(result.lastSequence ?? $0)" } ?? "no entries"
                    return "audit chain intact: \(result.entries) checked (\(range)), head \(result.headHash ?? "-")\n"
                }
                return "audit chain BROKEN at entry \(result.brokenSequence.map(String.init) ?? "?"): \(result.problem ?? "")\n"
            }
            if !result.valid { throw ExitCode(1) }
        }
    }
}
