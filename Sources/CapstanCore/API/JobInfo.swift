import Foundation

/// A share of a job's nodes: a count (`5`) or a percentage of them (`25%`), as `--batch` and
/// `--max-failures` take it. Encoded as that text.
public enum NodeAmount: Sendable, Hashable, Codable, CustomStringConvertible {
    case count(Int)
    case percent(Int)

    /// Parses `N` or `P%`; `what` names the flag in errors.
    public init(_ text: String, what: String, allowZero: Bool) throws(CapstanError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.hasSuffix("%") {
            guard let value = Int(trimmed.dropLast()), (allowZero ? 0 : 1)...100 ~= value else {
                throw CapstanError(.invalidArgument, "\(what) \(text.quoted) must be a percentage from \(allowZero ? 0 : 1)% to 100%")
            }
            self = .percent(value)
        } else {
            guard let value = Int(trimmed), value >= (allowZero ? 0 : 1) else {
                throw CapstanError(
                    .invalidArgument, "\(what) \(text.quoted) must be a count of nodes (\(allowZero ? "0" : "1") or more) or a percentage like 25%")
            }
            self = .count(value)
        }
    }

    /// The number of nodes this amounts to out of `total`: percentages round up, so a batch
    /// of 10% of 5 nodes is 1 node, not 0.
    public func nodes(of total: Int) -> Int {
        switch self {
        case .count(let count): count
        case .percent(let percent): (total * percent + 99) / 100
        }
    }

    public var description: String {
        switch self {
        case .count(let count): String(count)
        case .percent(let percent): "\(percent)%"
        }
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        self = try NodeAmount(text, what: "amount", allowZero: true)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// What `capstan job run` asks for: a command, the nodes to run it on, and how to roll it out.
public struct JobSpec: Codable, Sendable, Hashable {
    /// Picks the nodes (empty: every node).
    public var selector: String
    /// The command as argv; with `shell`, one element, the command line `/bin/sh -c` runs.
    public var command: [String]
    public var shell: Bool
    /// Nodes per batch; the next batch starts when the current one is done. Nil: all at once.
    public var batch: NodeAmount?
    /// The job aborts when more nodes than this have failed (failed, timed out or unreachable);
    /// the nodes not started yet are skipped. Nil: never aborts.
    public var maxFailures: NodeAmount?
    /// Per node: the command is killed (its whole process group) after this long.
    public var timeoutMilliseconds: Int64
    /// Per node: how many times a transient failure (a dropped connection) is retried.
    public var retries: Int
    /// Only nodes that are healthy when the job starts run it; the others are skipped.
    public var onlyHealthy: Bool
    /// Submitting a job with the key of an existing one returns that job instead.
    public var idempotencyKey: String?
    /// Per node and stream, the output kept; the rest is dropped and the cut marked.
    public var outputLimitBytes: Int

    public static let defaultTimeoutMilliseconds: Int64 = 30_000
    public static let defaultOutputLimitBytes = 64 * 1024

    public init(
        selector: String, command: [String], shell: Bool = false, batch: NodeAmount? = nil, maxFailures: NodeAmount? = nil,
        timeoutMilliseconds: Int64 = JobSpec.defaultTimeoutMilliseconds, retries: Int = 0, onlyHealthy: Bool = false,
        idempotencyKey: String? = nil, outputLimitBytes: Int = JobSpec.defaultOutputLimitBytes
    ) {
        self.selector = selector
        self.command = command
        self.shell = shell
        self.batch = batch
        self.maxFailures = maxFailures
        self.timeoutMilliseconds = timeoutMilliseconds
        self.retries = retries
        self.onlyHealthy = onlyHealthy
        self.idempotencyKey = idempotencyKey
        self.outputLimitBytes = outputLimitBytes
    }

    enum CodingKeys: String, CodingKey {
        case selector, command, shell, batch, maxFailures, timeoutMilliseconds, retries, onlyHealthy, idempotencyKey, outputLimitBytes
    }

    /// Absent fields take their defaults, so a request may give only `command`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        selector = try container.decodeIfPresent(String.self, forKey: .selector) ?? ""
        command = try container.decode([String].self, forKey: .command)
        shell = try container.decodeIfPresent(Bool.self, forKey: .shell) ?? false
        batch = try container.decodeIfPresent(NodeAmount.self, forKey: .batch)
        maxFailures = try container.decodeIfPresent(NodeAmount.self, forKey: .maxFailures)
        timeoutMilliseconds = try container.decodeIfPresent(Int64.self, forKey: .timeoutMilliseconds) ?? Self.defaultTimeoutMilliseconds
        retries = try container.decodeIfPresent(Int.self, forKey: .retries) ?? 0
        onlyHealthy = try container.decodeIfPresent(Bool.self, forKey: .onlyHealthy) ?? false
        idempotencyKey = try container.decodeIfPresent(String.self, forKey: .idempotencyKey)
        outputLimitBytes = try container.decodeIfPresent(Int.self, forKey: .outputLimitBytes) ?? Self.defaultOutputLimitBytes
    }

    /// The command as one line, for listings.
    public var commandLine: String {
        shell ? command.joined(separator: " ") : command.map { $0.contains(" ") || $0.isEmpty ? $0.quoted : $0 }.joined(separator: " ")
    }
}

public enum JobState: String, Codable, Sendable, Hashable, CaseIterable {
    case running
    /// Every node succeeded (or was skipped as unhealthy with `--only-healthy`).
    case succeeded
    /// Done, with at least one node failed, timed out or unreachable.
    case failed
    /// Stopped when failures passed `--max-failures`.
    case aborted
    case cancelled

    public var isFinished: Bool { self != .running }
}

public enum JobNodeState: String, Codable, Sendable, Hashable, CaseIterable {
    case pending
    case running
    case succeeded
    /// The command ran and exited non-zero (or could not start, or the agent refused it).
    case failed
    case timedOut = "timed_out"
    /// The node was offline, its connection dropped (after any retries), or it went silent.
    case unreachable
    case cancelled
    /// Not run: the job aborted first, or the node was unhealthy with `--only-healthy`.
    case skipped

    public var isFinished: Bool { self != .pending && self != .running }
    /// Counts against `--max-failures`.
    public var isFailure: Bool { self == .failed || self == .timedOut || self == .unreachable }
}

/// One node's part in a job.
public struct JobNode: Codable, Sendable, Hashable {
    public var name: String
    public var state: JobNodeState
    public var exitCode: Int32?
    public var stdout: String
    public var stderr: String
    /// Output past `outputLimitBytes` was dropped.
    public var stdoutTruncated: Bool
    public var stderrTruncated: Bool
    public var startedAt: Date?
    public var endedAt: Date?
    /// How long the command ran, by the agent's clock.
    public var durationMilliseconds: Int64?
    /// Runs started on the node (1 plus retries).
    public var attempts: Int
    /// Why the node failed, was unreachable, skipped or cancelled, when it is not the exit code.
    public var error: String?

    public init(
        name: String, state: JobNodeState = .pending, exitCode: Int32? = nil, stdout: String = "", stderr: String = "",
        stdoutTruncated: Bool = false, stderrTruncated: Bool = false, startedAt: Date? = nil, endedAt: Date? = nil,
        durationMilliseconds: Int64? = nil, attempts: Int = 0, error: String? = nil
    ) {
        self.name = name
        self.state = state
        self.exitCode = exitCode
        self.stdout = stdout
        self.stderr = stderr
        self.stdoutTruncated = stdoutTruncated
        self.stderrTruncated = stderrTruncated
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.durationMilliseconds = durationMilliseconds
        self.attempts = attempts
        self.error = error
    }
}

/// A job: what was asked, how far it got, and every node's result.
public struct JobInfo: Codable, Sendable, Hashable {
    public var id: String
    public var spec: JobSpec
    public var state: JobState
    public var createdAt: Date
    public var finishedAt: Date?
    /// Why the job aborted or was cancelled.
    public var reason: String?
    public var nodes: [JobNode]

    public init(
        id: String, spec: JobSpec, state: JobState, createdAt: Date, finishedAt: Date? = nil, reason: String? = nil, nodes: [JobNode]
    ) {
        self.id = id
        self.spec = spec
        self.state = state
        self.createdAt = createdAt
        self.finishedAt = finishedAt
        self.reason = reason
        self.nodes = nodes
    }

    /// Nodes per state.
    public var counts: [JobNodeState: Int] {
        nodes.reduce(into: [:]) { $0[$1.state, default: 0] += 1 }
    }

    public var summary: JobSummary {
        let counts = self.counts
        return JobSummary(
            id: id, state: state, command: spec.commandLine, selector: spec.selector, createdAt: createdAt, finishedAt: finishedAt,
            total: nodes.count, succeeded: counts[.succeeded] ?? 0,
            failed: nodes.count(where: \.state.isFailure), running: counts[.running] ?? 0)
    }
}

/// A line of `capstan job ls`.
public struct JobSummary: Codable, Sendable, Hashable {
    public var id: String
    public var state: JobState
    public var command: String
    public var selector: String
    public var createdAt: Date
    public var finishedAt: Date?
    public var total: Int
    public var succeeded: Int
    /// Failed, timed out or unreachable.
    public var failed: Int
    public var running: Int

    public init(
        id: String, state: JobState, command: String, selector: String, createdAt: Date, finishedAt: Date?, total: Int, succeeded: Int,
        failed: Int, running: Int
    ) {
        self.id = id
        self.state = state
        self.command = command
        self.selector = selector
        self.createdAt = createdAt
        self.finishedAt = finishedAt
        self.total = total
        self.succeeded = succeeded
        self.failed = failed
        self.running = running
    }
}

public struct JobList: Codable, Sendable, Hashable {
    public var items: [JobSummary]

    public init(items: [JobSummary]) {
        self.items = items
    }
}

/// What a job's event stream (`GET /v1/jobs/{id}/events`) carries, one per server-sent event.
public struct JobEvent: Codable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable, Hashable {
        /// A node changed state; `node` holds it (output fields empty until it finishes).
        case node
        /// Output from a node as it runs.
        case output
        /// The job finished; `job` holds its final summary. The stream ends after it.
        case done
    }

    public enum Stream: String, Codable, Sendable, Hashable {
        case stdout, stderr
    }

    public var type: Kind
    public var node: JobNode?
    /// For `output`: the node, the stream and the text.
    public var name: String?
    public var stream: Stream?
    public var text: String?
    public var job: JobSummary?

    public init(
        type: Kind, node: JobNode? = nil, name: String? = nil, stream: Stream? = nil, text: String? = nil, job: JobSummary? = nil
    ) {
        self.type = type
        self.node = node
        self.name = name
        self.stream = stream
        self.text = text
        self.job = job
    }
}
