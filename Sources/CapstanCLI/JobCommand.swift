import ArgumentParser
import CapstanClient
import CapstanCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

struct JobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job",
        abstract: "Run a command on the nodes a selector picks, and look at jobs.",
        discussion: """
            A job runs its command on each node's agent as argv (through /bin/sh -c only with --shell), in \
            rolling batches; a node that is offline or drops is unreachable, never waited on past the \
            timeout; a non-zero exit is a failure and is not retried. Every node's exit code and output \
            (capped) are kept.
            """,
        subcommands: [Run.self, List.self, Show.self, Logs.self, Cancel.self]
    )

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a command on nodes and follow it.",
            discussion: """
                Follows the job: on a terminal a progress line, and output lines prefixed by node name as \
                they come; at the end a table of every node. Exits 1 if any node failed, timed out or was \
                unreachable, or if the job aborted or was cancelled. Example: capstan job run -s role=web --batch 25% -- systemctl restart nginx
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var options: JobOptions
        @Option(help: "Submitting the same key again returns the job it started instead of a new one.") var idempotencyKey: String?
        @Flag(help: "Print the job id and return at once.") var detach = false
        @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.") var command: [String] = []

        func spec() throws -> JobSpec {
            var spec = try options.spec(command: command)
            spec.idempotencyKey = idempotencyKey
            return spec
        }

        func validate() throws {
            _ = try spec()
        }

        func run() async throws {
            let client = try global.client()
            let job = try await client.runJob(try spec())
            if detach {
                if global.output == .table { print(job.id) } else { try Output.print(job, as: global.output) { "" } }
                return
            }
            let follower = JobFollower(id: job.id, total: job.nodes.count, live: global.output == .table)
            if global.output == .table { printError("job \(job.id) on \(job.nodes.count) nodes: \(job.spec.commandLine)") }
            for try await event in client.jobEvents(job.id) { follower.handle(event) }
            let final = try await client.job(job.id)
            follower.finish()
            try Output.print(final, as: global.output) { JobCommand.table(final) + JobCommand.summary(final) }
            if final.state != .succeeded {
                throw JobFailed("job \(final.id) \(final.state.rawValue): " + JobCommand.counts(final))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List jobs, newest first.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let list = try await global.client().jobs()
            try Output.print(list.items, as: global.output) {
                Output.table(
                    ["ID", "STATE", "NODES", "OK", "FAILED", "STARTED", "COMMAND"],
                    list.items.map {
                        [$0.id, $0.state.rawValue, String($0.total), String($0.succeeded), String($0.failed), Output.time($0.createdAt), $0.command]
                    })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a job and every node's result.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Job id.") var id: String

        func run() async throws {
            let job = try await global.client().job(id)
            try Output.print(job, as: global.output) {
                "job \(job.id): \(job.state.rawValue), \(job.spec.commandLine)\n" + JobCommand.table(job) + JobCommand.summary(job)
            }
        }
    }

    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a job's output, each line prefixed by its node.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Job id.") var id: String
        @Option(help: "Only this node's output.") var node: String?
        @Flag(help: "Keep printing output as it comes until the job is done.") var follow = false

        func run() async throws {
            let client = try global.client()
            if follow {
                let follower = JobFollower(id: id, total: 0, live: false, node: node)
                for try await event in client.jobEvents(id) { follower.handle(event) }
                follower.finish()
                return
            }
            let job = try await client.job(id)
            if let node, !job.nodes.contains(where: { $0.name == node }) {
                throw JobFailed("job \(id) did not run on node \(node)")
            }
            for result in job.nodes where node == nil || result.name == node {
                JobFollower.printOutput(of: result)
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel a running job: nodes not started are cancelled, running commands killed.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Job id.") var id: String

        func run() async throws {
            let job = try await global.client().cancelJob(id)
            try Output.print(job, as: global.output) { "cancelling job \(job.id)\n" }
        }
    }

    static func table(_ job: JobInfo) -> String {
        Output.table(
            ["NODE", "STATE", "EXIT", "ATTEMPTS", "TIME", "ERROR"],
            job.nodes.map { node in
                let time = node.durationMilliseconds.map { String(format: "%.2fs", Double($0) / 1000) } ?? "-"
                return [node.name, node.state.rawValue, node.exitCode.map(String.init) ?? "-", String(node.attempts), time, node.error ?? ""]
            })
    }

    static func counts(_ job: JobInfo) -> String {
        let counts = job.counts
        return JobNodeState.allCases.compactMap { state in counts[state].map { "\($0) \(state.rawValue)" } }.joined(separator: ", ")
    }

    static func summary(_ job: JobInfo) -> String {
        "\(job.state.rawValue): \(counts(job))" + (job.reason.map { " (\($0))" } ?? "") + "\n"
    }
}

/// How a job runs, as `job run` and `schedule put` take it.
struct JobOptions: ParsableArguments {
    @Option(name: [.short, .long], help: "Nodes to run on (empty: every node).") var selector: String = ""
    @Option(help: ArgumentHelp("Nodes per batch, a count or a percentage; the next batch starts when one is done (default: all at once).", valueName: "N|P%"))
    var batch: String?
    @Option(help: ArgumentHelp("Abort when more nodes than this fail; nodes not started are skipped (default: never abort).", valueName: "N|P%"))
    var maxFailures: String?
    @Option(help: "Per node, kill the command (its whole process group) after this long.") var timeout: String = "30s"
    @Option(help: "Per node, retries after a dropped connection (a non-zero exit is not retried).") var retries: Int = 0
    @Flag(help: "Run only on nodes that are healthy now (live, and no check critical); the others are skipped.") var onlyHealthy = false
    @Flag(help: "Run the command through /bin/sh -c instead of as plain argv.") var shell = false
    @Option(help: "Per node and stream, the output kept, at most 1MiB (the rest is dropped and the cut marked).")
    var outputLimit: String = "64KiB"

    /// The job these options describe for `command`; bad input is a usage error.
    func spec(command: [String]) throws -> JobSpec {
        let timeoutDuration: Duration
        do { timeoutDuration = try DurationParser.parse(timeout) } catch { throw ValidationError("--timeout: \(error.message)") }
        let limit: Int
        do { limit = try ByteSize.parse(outputLimit) } catch { throw ValidationError("--output-limit: \(error.message)") }
        do {
            let spec = JobSpec(
                selector: selector, command: shell ? [command.joined(separator: " ")] : command, shell: shell,
                batch: try batch.map { try NodeAmount($0, what: "--batch", allowZero: false) },
                maxFailures: try maxFailures.map { try NodeAmount($0, what: "--max-failures", allowZero: true) },
                timeoutMilliseconds: timeoutDuration.milliseconds, retries: retries, onlyHealthy: onlyHealthy,
                outputLimitBytes: limit)
            try JobSpecCheck.validate(spec)
            return spec
        } catch let error as CapstanError {
            throw ValidationError(error.description)
        }
    }
}

/// A failure to report with exit status 1 (a job that did not succeed, say).
struct JobFailed: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The same checks the server makes, so that bad input is refused before anything is sent.
enum JobSpecCheck {
    static func validate(_ spec: JobSpec) throws(CapstanError) {
        guard !spec.command.isEmpty, !(spec.command.first ?? "").trimmingCharacters(in: .whitespaces).isEmpty else {
            throw CapstanError(.invalidArgument, "the command is empty: give it after --, e.g. capstan job run -- uptime")
        }
        do { _ = try Selector(spec.selector) } catch { throw CapstanError(.invalidSelector, "--selector: \(error.description)") }
        guard spec.timeoutMilliseconds > 0 else { throw CapstanError(.invalidArgument, "--timeout must be more than 0") }
        guard spec.retries >= 0 else { throw CapstanError(.invalidArgument, "--retries cannot be negative") }
    }
}

/// Prints a job's events as they come: output lines prefixed by node name, and on a terminal a
/// progress line kept at the bottom.
final class JobFollower: @unchecked Sendable {
    let id: String
    var total: Int
    let live: Bool
    let node: String?
    private var states: [String: JobNodeState] = [:]
    private var partial: [String: String] = [:]
    private var printedLive: Set<String> = []
    private let terminal = isatty(STDERR_FILENO) == 1
    private var progressShown = false

    init(id: String, total: Int, live: Bool, node: String? = nil) {
        self.id = id
        self.total = total
        self.live = live
        self.node = node
    }

    func handle(_ event: JobEvent) {
        switch event.type {
        case .node:
            guard let result = event.node else { return }
            let before = states[result.name]
            states[result.name] = result.state
            // A node that finished before we listened: its stored output, once.
            if result.state.isFinished, before?.isFinished != true, !printedLive.contains(result.name), node == nil || node == result.name {
                Self.printOutput(of: result)
            }
            showProgress()
        case .output:
            guard let name = event.name, let text = event.text, node == nil || node == name else { return }
            printedLive.insert(name)
            let key = name + "\u{0}" + (event.stream?.rawValue ?? "stdout")
            var buffer = (partial[key] ?? "") + text
            while let newline = buffer.firstIndex(of: "\n") {
                emit(name, stream: event.stream ?? .stdout, String(buffer[..<newline]))
                buffer = String(buffer[buffer.index(after: newline)...])
            }
            partial[key] = buffer
        case .done:
            break
        }
    }

    /// Prints what is left of unfinished lines and clears the progress line.
    func finish() {
        for (key, rest) in partial where !rest.isEmpty {
            let parts = key.split(separator: "\u{0}", maxSplits: 1).map(String.init)
            emit(parts[0], stream: parts.count > 1 && parts[1] == "stderr" ? .stderr : .stdout, rest)
        }
        partial = [:]
        clearProgress()
    }

    private func emit(_ name: String, stream: JobEvent.Stream, _ line: String) {
        clearProgress()
        printLine(Self.prefix(name, stream) + line)
        showProgress()
    }

    static func printOutput(of node: JobNode) {
        for (stream, text, cut) in [(JobEvent.Stream.stdout, node.stdout, node.stdoutTruncated), (.stderr, node.stderr, node.stderrTruncated)]
        where !text.isEmpty {
            for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast(text.hasSuffix("\n") ? 1 : 0) {
                printLine(prefix(node.name, stream) + line)
            }
            if cut { printLine(prefix(node.name, stream) + "[output truncated]") }
        }
    }

    /// `NODE: ` before a line of standard output, `NODE ! ` before one of standard error.
    static func prefix(_ name: String, _ stream: JobEvent.Stream) -> String {
        stream == .stderr ? "\(name) ! " : "\(name): "
    }

    private func showProgress() {
        guard live, terminal, total > 0 else { return }
        let done = states.values.count(where: \.isFinished)
        let failed = states.values.count(where: \.isFailure)
        let running = states.values.count(where: { $0 == .running })
        FileHandle.standardError.write(Data("\r\u{1B}[Kjob \(id): \(done)/\(total) done, \(failed) failed, \(running) running".utf8))
        progressShown = true
    }

    private func clearProgress() {
        guard progressShown else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        progressShown = false
    }
}
