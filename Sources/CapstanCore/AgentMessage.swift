import Foundation

/// One message on an agent's connection (a WebSocket text frame of JSON), in either direction.
/// Dates are milliseconds since 1970.
///
/// Every message carries the protocol version `v` and its `type`; the payload fields that
/// type uses are set, the others absent. A server accepts agents of its own version and the one
/// before; an agent of another version is refused with an `error` message naming both.
public struct AgentMessage: Codable, Sendable, Hashable {
    /// The protocol version this build speaks. Version 2 added jobs; a version 1 agent gets
    /// template sets but no jobs (its nodes are reported unreachable for them, with the reason).
    public static let currentVersion = 2
    /// The oldest agent version a server accepts.
    public static let oldestAcceptedVersion = 1

    public enum Kind: String, Codable, Sendable, Hashable {
        /// Agent → server, first: facts and labels as the agent sees them now.
        case hello
        /// Server → agent, in answer to `hello`: the heartbeat interval to keep.
        case welcome
        /// Agent → server, every heartbeat interval.
        case heartbeat
        /// Server → agent: every template that binds the node, whenever that set or an input changes.
        case templates
        /// Agent → server: how applying a template went.
        case report
        /// Either way, before closing: why.
        case error
        /// Server → agent: run a command (protocol 2).
        case job
        /// Server → agent: stop a job's command (its whole process group).
        case jobCancel = "job_cancel"
        /// Agent → server: output of a running command, as it comes.
        case jobOutput = "job_output"
        /// Agent → server: how a command ended, with its output (capped).
        case jobResult = "job_result"
        /// Agent → server: a host metrics sample, every metrics interval.
        case metrics
        /// Agent → server: a health check's status changed.
        case check
    }

    public var v: Int
    public var type: Kind
    public var hello: Hello?
    public var welcome: Welcome?
    public var heartbeat: Heartbeat?
    public var templates: Templates?
    public var report: TemplateReport?
    public var error: String?
    public var job: JobStart?
    public var jobCancel: JobCancel?
    public var jobOutput: JobOutput?
    public var jobResult: JobResult?
    public var metrics: HostSample?
    public var check: CheckResult?

    public init(
        type: Kind, hello: Hello? = nil, welcome: Welcome? = nil, heartbeat: Heartbeat? = nil, templates: Templates? = nil,
        report: TemplateReport? = nil, error: String? = nil, job: JobStart? = nil, jobCancel: JobCancel? = nil,
        jobOutput: JobOutput? = nil, jobResult: JobResult? = nil, metrics: HostSample? = nil, check: CheckResult? = nil,
        version: Int = AgentMessage.currentVersion
    ) {
        self.v = version
        self.type = type
        self.hello = hello
        self.welcome = welcome
        self.heartbeat = heartbeat
        self.templates = templates
        self.report = report
        self.error = error
        self.job = job
        self.jobCancel = jobCancel
        self.jobOutput = jobOutput
        self.jobResult = jobResult
        self.metrics = metrics
        self.check = check
    }

    /// The templates that bind a node, as one set: the agent applies it whole.
    public struct Templates: Codable, Sendable, Hashable {
        public var assignments: [TemplateAssignment]
        /// The node's labels as selectors see them (the agent's and the server's), for
        /// `{{node.labels.KEY}}`.
        public var labels: [String: String]
        /// Identifies this set; the agent sends it back in `hello` after a reconnect, and the
        /// server resends the set only when it changed since.
        public var digest: String
        /// The health checks that bind the node (protocol 2; a set without them has none).
        public var checks: [CheckAssignment]?

        public init(assignments: [TemplateAssignment], labels: [String: String], digest: String, checks: [CheckAssignment]? = nil) {
            self.assignments = assignments
            self.labels = labels
            self.digest = digest
            self.checks = checks
        }
    }

    public struct Hello: Codable, Sendable, Hashable {
        public var facts: NodeFacts
        public var labels: [String: String]
        /// The digest of the template set the agent last received (and still applies).
        public var templatesDigest: String?

        public init(facts: NodeFacts, labels: [String: String], templatesDigest: String? = nil) {
            self.facts = facts
            self.labels = labels
            self.templatesDigest = templatesDigest
        }
    }

    public struct Welcome: Codable, Sendable, Hashable {
        public var node: String
        public var heartbeatIntervalMilliseconds: Int64
        /// How often to send host metrics (protocol 2; absent: 15 s).
        public var metricsIntervalMilliseconds: Int64?

        public init(node: String, heartbeatIntervalMilliseconds: Int64, metricsIntervalMilliseconds: Int64? = nil) {
            self.node = node
            self.heartbeatIntervalMilliseconds = heartbeatIntervalMilliseconds
            self.metricsIntervalMilliseconds = metricsIntervalMilliseconds
        }
    }

    public struct Heartbeat: Codable, Sendable, Hashable {
        public var sequence: Int64

        public init(sequence: Int64) {
            self.sequence = sequence
        }
    }

    /// One run of a job's command on this node. A retry after a dropped connection is a new
    /// attempt of the same job.
    public struct JobStart: Codable, Sendable, Hashable {
        public var id: String
        public var attempt: Int
        /// Argv, or with `shell` the one command line for `/bin/sh -c`.
        public var command: [String]
        public var shell: Bool
        public var timeoutMilliseconds: Int64
        /// Per stream, the output kept for the result.
        public var outputLimitBytes: Int

        public init(id: String, attempt: Int, command: [String], shell: Bool, timeoutMilliseconds: Int64, outputLimitBytes: Int) {
            self.id = id
            self.attempt = attempt
            self.command = command
            self.shell = shell
            self.timeoutMilliseconds = timeoutMilliseconds
            self.outputLimitBytes = outputLimitBytes
        }
    }

    public struct JobCancel: Codable, Sendable, Hashable {
        public var id: String

        public init(id: String) {
            self.id = id
        }
    }

    public struct JobOutput: Codable, Sendable, Hashable {
        public var id: String
        public var attempt: Int
        public var stream: JobEvent.Stream
        public var text: String

        public init(id: String, attempt: Int, stream: JobEvent.Stream, text: String) {
            self.id = id
            self.attempt = attempt
            self.stream = stream
            self.text = text
        }
    }

    public struct JobResult: Codable, Sendable, Hashable {
        public enum Outcome: String, Codable, Sendable, Hashable {
            case succeeded, failed, timedOut = "timed_out", cancelled
            /// The agent does not run remote commands (`--no-exec`), or not this one.
            case refused
        }

        public var id: String
        public var attempt: Int
        public var outcome: Outcome
        public var exitCode: Int32?
        public var stdout: String
        public var stderr: String
        public var stdoutTruncated: Bool
        public var stderrTruncated: Bool
        public var startedAt: Date
        public var endedAt: Date
        public var error: String?

        public init(
            id: String, attempt: Int, outcome: Outcome, exitCode: Int32?, stdout: String, stderr: String, stdoutTruncated: Bool,
            stderrTruncated: Bool, startedAt: Date, endedAt: Date, error: String?
        ) {
            self.id = id
            self.attempt = attempt
            self.outcome = outcome
            self.exitCode = exitCode
            self.stdout = stdout
            self.stderr = stderr
            self.stdoutTruncated = stdoutTruncated
            self.stderrTruncated = stderrTruncated
            self.startedAt = startedAt
            self.endedAt = endedAt
            self.error = error
        }
    }

    public static func encode(_ message: AgentMessage) throws -> String {
        String(decoding: try encoder.encode(message), as: UTF8.self)
    }

    /// Decodes a message; throws `CapstanError(.invalidArgument)` for anything else.
    public static func decode(_ text: String) throws(CapstanError) -> AgentMessage {
        do {
            return try decoder.decode(AgentMessage.self, from: Data(text.utf8))
        } catch {
            throw CapstanError(.invalidArgument, "not an agent message: \(error)")
        }
    }

    // Dates as milliseconds since 1970: ISO 8601 text costs far more to write and read, and
    // every report carries one.
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        return encoder
    }()

    private static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return decoder
    }()
}
