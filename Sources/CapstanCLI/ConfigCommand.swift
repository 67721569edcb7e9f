import ArgumentParser
import CapstanClient
import CapstanCore
import Foundation

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Read and write config keys (NAMESPACE/PATH), their history and changes.",
        subcommands: [
            Put.self, Get.self, List.self, Remove.self, History.self, Diff.self, Rollback.self, Watch.self,
        ]
    )

    /// Validates a key on the client too, so a typo fails before any network round trip.
    static func key(_ text: String) throws -> ConfigKey {
        do { return try ConfigKey(text) } catch { throw ValidationError(error.message) }
    }

    /// Validates a listing or watch prefix on the client too.
    static func validatePrefix(_ text: String) throws {
        do { _ = try KeyPrefix(text) } catch { throw ValidationError(error.message) }
    }

    static func describe(_ info: ConfigVersionInfo) -> String {
        let what = info.secret == true ? "secret, encrypted" : "\(info.format.rawValue), \(ByteSize.format(info.size))"
        return "\(info.key): revision \(info.revision), version \(info.version) (\(what))\n"
    }

    /// The format column: a secret says so.
    static func format(_ info: ConfigVersionInfo) -> String {
        info.secret == true ? "\(info.format.rawValue) (secret)" : info.format.rawValue
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new version of a key from a file or standard input.",
            discussion: """
                The format comes from --format, else the key's extension (.yaml .yml .json .properties \
                .toml), else the file's extension, else text. Content is parsed before it is stored: \
                malformed content is refused with its line and column. With --secret the content is \
                stored encrypted instead (AES-256-GCM), unparsed; reading it back needs the read-secret \
                right, and it never appears in listings, history, diffs, watches or the audit log.
                """)

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Key: NAMESPACE/PATH, e.g. prod/order-service/database.yaml.") var key: String
        @Argument(help: "File to read (a pipe or <(command) too), or - (the default) for standard input.") var file: String = "-"
        @Option(help: "Content format: yaml, json, properties, toml or text.") var format: String?
        @Option(help: "Why this change was made; kept in the history.") var comment: String?
        @Option(name: .customLong("if-revision"), help: "Write only if the key is at this revision (0: only if absent).")
        var ifRevision: Int64?
        @Flag(help: "Store the content encrypted: a secret (a password, a key). Give it on every write of the key.")
        var secret = false
        @Option(help: "Store the content as this rollout's candidate: only its members see it until it is promoted.")
        var rollout: String?
        @Flag(help: "If a rollout holds the key, abort it first (a plain write is refused otherwise).") var force = false

        func validate() throws {
            if rollout != nil, secret { throw ValidationError("--rollout and --secret cannot go together: secrets are not rolled out gradually") }
            if rollout != nil, force { throw ValidationError("--rollout and --force cannot go together") }
            if rollout != nil, ifRevision != nil { throw ValidationError("--rollout and --if-revision cannot go together") }
        }

        func run() async throws {
            let configKey = try ConfigCommand.key(key)
            var format = try self.format.map { text -> ConfigFormat in
                do { return try ConfigFormat(name: text) } catch let error as CapstanError { throw ValidationError(error.message) }
            }
            if format == nil, configKey.fileExtension.flatMap({ ConfigFormat.infer(fromPath: "x.\($0)") }) ?? .text == .text,
                file != "-"
            {
                let inferred = ConfigFormat.infer(fromPath: file)
                if inferred != .text { format = inferred }
            }
            let content: Data
            if file == "-" {
                content = FileHandle.standardInput.readDataToEndOfFile()
            } else {
                content = try InputFile.read(file)
            }
            if let rollout {
                let info = try await global.client().putCandidate(
                    configKey.description, rollout: rollout, content: content, format: format, comment: comment)
                try Output.print(info, as: global.output) { "stored a candidate of \(configKey) in rollout \(rollout)\n" }
                return
            }
            let info = try await global.client().put(
                configKey.description, content: content, format: format, comment: comment, ifRevision: ifRevision, secret: secret,
                force: force)
            try Output.print(info, as: global.output) { ConfigCommand.describe(info) }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a key's content (current, or as of a store revision).")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Key: NAMESPACE/PATH.") var key: String
        @Option(help: "Print the content as of this store revision.") var revision: Int64?

        struct Rendered: Encodable {
            var key: String
            var revision: Int64
            var version: Int64
            var format: ConfigFormat
            var content: String
        }

        func run() async throws {
            let configKey = try ConfigCommand.key(key)
            let result = try await global.client().get(configKey.description, revision: revision)
            let text = String(decoding: result.content, as: UTF8.self)
            let rendered = Rendered(
                key: result.key, revision: result.revision, version: result.version, format: result.format, content: text)
            try Output.print(rendered, as: global.output) { text }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls",
            abstract: "List keys under a prefix (a namespace, a directory like prod/app/, or any key prefix).")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Prefix; empty lists every key.") var prefix: String = ""
        @Option(help: "List at most this many keys.") var limit: Int?

        func run() async throws {
            try ConfigCommand.validatePrefix(prefix)
            let list = try await global.client().list(prefix, limit: limit)
            try Output.print(list.items, as: global.output) {
                Output.table(
                    ["KEY", "REVISION", "VERSION", "FORMAT", "SIZE", "AUTHOR", "UPDATED"],
                    list.items.map {
                        [
                            $0.key, String($0.revision), String($0.version), ConfigCommand.format($0), ByteSize.format($0.size),
                            $0.author, Output.time($0.time),
                        ]
                    })
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Delete a key (its history stays until the namespace is deleted).")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Key: NAMESPACE/PATH.") var key: String
        @Option(name: .customLong("if-revision"), help: "Delete only if the key is at this revision.") var ifRevision: Int64?
        @Option(help: "Store the deletion as this rollout's candidate: only its members lose the key until it is promoted.")
        var rollout: String?
        @Flag(help: "If a rollout holds the key, abort it first (a plain delete is refused otherwise).") var force = false

        func validate() throws {
            if rollout != nil, force || ifRevision != nil { throw ValidationError("--rollout goes with neither --force nor --if-revision") }
        }

        func run() async throws {
            let configKey = try ConfigCommand.key(key)
            if let rollout {
                let info = try await global.client().deleteCandidate(configKey.description, rollout: rollout)
                try Output.print(info, as: global.output) { "stored the deletion of \(configKey) as a candidate in rollout \(rollout)\n" }
                return
            }
            let info = try await global.client().delete(configKey.description, ifRevision: ifRevision, force: force)
            try Output.print(info, as: global.output) { "deleted \(info.key) at revision \(info.revision)\n" }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the retained versions of a key, newest first.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Key: NAMESPACE/PATH.") var key: String
        @Option(help: "Show at most this many versions.") var limit: Int?

        func run() async throws {
            let configKey = try ConfigCommand.key(key)
            let history = try await global.client().history(configKey.description, limit: limit)
            try Output.print(history.items, as: global.output) {
                Output.table(
                    ["REVISION", "VERSION", "ACTION", "FORMAT", "SIZE", "AUTHOR", "TIME", "COMMENT"],
                    history.items.map {
                        [
                            String($0.revision), String($0.version), $0.action.rawValue, ConfigCommand.format($0),
                            ByteSize.format($0.size), $0.author, Output.time($0.time), $0.comment,
                        ]
                    })
            }
        }
    }

    struct Diff: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Unified diff of a key between two store revisions (the second defaults to now).")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Key: NAMESPACE/PATH.") var key: String
        @Argument(help: "Old store revision.") var revisionA: Int64
        @Argument(help: "New store revision (default: current).") var revisionB: Int64?

        func run() async throws {
            let configKey = try ConfigCommand.key(key)
            let diff = try await global.client().diff(configKey.description, from: revisionA, to: revisionB)
            struct Rendered: Encodable { var key: String; var from: Int64; var to: Int64?; var diff: String }
            try Output.print(Rendered(key: configKey.description, from: revisionA, to: revisionB, diff: diff), as: global.output) {
                diff
            }
        }
    }

    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write an earlier version's content as a new version.",
            discussion: "Without --to, rolls back to the version before the current one.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Key: NAMESPACE/PATH.") var key: String
        @Option(help: "Store revision whose content to restore.") var to: Int64?
        @Option(help: "Why; kept in the history.") var comment: String?
        @Option(name: .customLong("if-revision"), help: "Roll back only if the key is at this revision.") var ifRevision: Int64?

        func run() async throws {
            let configKey = try ConfigCommand.key(key)
            let info = try await global.client().rollback(
                configKey.description, to: to, comment: comment, ifRevision: ifRevision)
            try Output.print(info, as: global.output) { ConfigCommand.describe(info) }
        }
    }

    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print changes under a prefix as they happen (Ctrl-C to stop).",
            discussion: "With -o json, one JSON object per line. Reconnects and resumes by itself if the connection drops.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Prefix to watch; empty watches every key.") var prefix: String = ""
        @Option(help: "Start at this store revision (replaying what changed since).") var from: Int64?
        @Option(help: "Stop after this many events (for scripts); default: follow until interrupted.") var count: Int?

        func validate() throws {
            if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        }

        func run() async throws {
            try ConfigCommand.validatePrefix(prefix)
            var seen = 0
            for try await event in try global.client().watch(prefix, from: from) {
                switch global.output {
                case .json:
                    printLine(try Output.json(event, pretty: false))
                case .yaml:
                    printLine("---\n" + (try Output.yaml(event)).trimmingCharacters(in: .newlines))
                case .table:
                    let detail = event.type == .put ? "version \(event.version ?? 0) by \(event.author ?? "?")" : ""
                    printLine("\(event.revision)  \(event.type.rawValue)  \(event.key)  \(detail)")
                }
                seen += 1
                if let count, seen >= count { return }
            }
        }
    }
}
