import ArgumentParser
import CapstanCore
import Foundation

struct TemplateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template",
        abstract: "Render config keys into files on the nodes a selector picks.",
        discussion: """
            The source is Mustache text stored as a config key. The --data configs are parsed and merged, \
            later ones winning, into the root context ({{port}} for port: 8080), with node.name, node.facts \
            and node.labels beside them; a name that resolves to nothing is an error, not a blank. Agents \
            render on every change, check the new file (--check, with {{src}} for its temporary path), swap \
            it in atomically, reload after a random --splay, and put the old file back when the reload fails. \
            A destination must lie inside one of the agent's --allow-path directories. A secret is \
            written in as {{secret "NS/KEY"}} for a key declared with --secret: it is resolved only for \
            the nodes the template binds, and sent only over their mutual-TLS connections.
            """,
        subcommands: [Put.self, List.self, Status.self, Remove.self]
    )

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create or replace a template.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Template name: lowercase letters, digits, -, . and _.") var name: String
        @Option(name: [.short, .long], help: "Nodes to render on (empty: every node).") var selector: String = ""
        @Option(help: "Config key holding the Mustache text, NS/KEY.") var source: String
        @Option(help: "Absolute path of the file on the node.") var dest: String
        @Option(help: "A config key (NS/KEY) or prefix (NS/PREFIX/) whose data the template sees; repeat to merge more.")
        var data: [String] = []
        @Option(help: "File mode, octal (default: 0644; 0600 with --secret).") var mode: String?
        @Option(
            name: .customLong("secret"),
            help: "A secret config key (NS/KEY) the source references as {{secret \"NS/KEY\"}}; repeat for more. Needs read-secret on it.")
        var secrets: [String] = []
        @Option(help: "Command checking the new file before it replaces the old; {{src}} is its path.") var check: String?
        @Option(help: "Command run after the file changed; a failure puts the old file back.") var reload: String?
        @Option(help: "Longest random wait before the reload, e.g. 10s.") var splay: String = "0s"
        @Flag(help: "Run --check and --reload through /bin/sh -c instead of as plain argv.") var shell = false
        @Flag(help: "Accept a --mode that lets every local user write the file (o+w, as 0666); refused without it.")
        var allowWorldWritable = false
        @Option(help: "Store this definition as the rollout's candidate: only its member nodes render it until it is promoted.")
        var rollout: String?

        func spec() throws -> TemplateSpec {
            // A file holding secrets is the owner's alone unless a mode says otherwise.
            let mode = self.mode ?? (secrets.isEmpty ? "0644" : "0600")
            guard let modeValue = Int(mode.hasPrefix("0o") ? String(mode.dropFirst(2)) : mode, radix: 8), (0...0o777).contains(modeValue)
            else { throw ValidationError("--mode must be octal permission bits such as 0644 (no setuid, setgid or sticky); got \(mode)") }
            let splayDuration: Duration
            do { splayDuration = try DurationParser.parse(splay) } catch { throw ValidationError("--splay: \(error.message)") }
            return TemplateSpec(
                selector: selector, source: source, dest: dest, data: data, mode: modeValue, check: check, reload: reload,
                splayMilliseconds: splayDuration.milliseconds, shell: shell, secrets: secrets.isEmpty ? nil : secrets,
                allowWorldWritable: allowWorldWritable ? true : nil)
        }

        func validate() throws {
            if let refusal = try spec().worldWritableRefusal { throw ValidationError(refusal) }
            do { _ = try Selector(selector) } catch { throw ValidationError("--selector: \(error.description)") }
            guard dest.hasPrefix("/") else { throw ValidationError("--dest must be an absolute path; got \(dest)") }
        }

        func run() async throws {
            if let rollout {
                let info = try await global.client().putTemplateCandidate(name, try spec(), rollout: rollout)
                try Output.print(info, as: global.output) { "stored a candidate of template \(name) in rollout \(rollout)\n" }
                return
            }
            let info = try await global.client().putTemplate(name, try spec())
            try Output.print(info, as: global.output) { "saved template \(info.name) (revision \(info.revision))\n" }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List templates.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let list = try await global.client().templates()
            try Output.print(list.items, as: global.output) {
                Output.table(
                    ["NAME", "SELECTOR", "SOURCE", "DEST", "RELOAD"],
                    list.items.map { [$0.name, $0.spec.selector.isEmpty ? "(all)" : $0.spec.selector, $0.spec.source, $0.spec.dest, $0.spec.reload ?? "-"] })
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a template's rollout: nodes applied, failed and pending, and the failing nodes' errors.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Template name.") var name: String

        func run() async throws {
            let status = try await global.client().templateStatus(name)
            try Output.print(status, as: global.output) {
                var text = "\(status.name) at revision \(status.revision): "
                text += "\(status.applied) applied, \(status.failed) failed, \(status.pending) pending\n"
                let failing = status.nodes.filter { $0.state == .failed }
                if !failing.isEmpty {
                    text += Output.table(["FAILED NODE", "REVISION", "ERROR"], failing.map { [$0.name, $0.revision.map(String.init) ?? "-", $0.error ?? ""] })
                }
                return text
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Remove a template; files already written on nodes stay.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Template name.") var name: String

        func run() async throws {
            try await global.client().removeTemplate(name)
            if global.output == .table { print("removed template \(name)") }
        }
    }
}
