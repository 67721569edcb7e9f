import Foundation

/// One message on an agent's connection (a WebSocket text frame of JSON), in either direction.
/// Dates are milliseconds since 1970.
///
/// Every message carries the protocol version `v` and its `type`; the payload fields that
/// type uses are set, the others absent. A server accepts agents of its own version and the one
/// before; an agent of another version is refused with an `error` message naming both.
public struct AgentMessage: Codable, Sendable, Hashable {
    /// The protocol version this build speaks.
    public static let currentVersion = 1
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
    }

    public var v: Int
    public var type: Kind
    public var hello: Hello?
    public var welcome: Welcome?
    public var heartbeat: Heartbeat?
    public var templates: Templates?
    public var report: TemplateReport?
    public var error: String?

    public init(
        type: Kind, hello: Hello? = nil, welcome: Welcome? = nil, heartbeat: Heartbeat? = nil, templates: Templates? = nil,
        report: TemplateReport? = nil, error: String? = nil, version: Int = AgentMessage.currentVersion
    ) {
        self.v = version
        self.type = type
        self.hello = hello
        self.welcome = welcome
        self.heartbeat = heartbeat
        self.templates = templates
        self.report = report
        self.error = error
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

        public init(assignments: [TemplateAssignment], labels: [String: String], digest: String) {
            self.assignments = assignments
            self.labels = labels
            self.digest = digest
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

        public init(node: String, heartbeatIntervalMilliseconds: Int64) {
            self.node = node
            self.heartbeatIntervalMilliseconds = heartbeatIntervalMilliseconds
        }
    }

    public struct Heartbeat: Codable, Sendable, Hashable {
        public var sequence: Int64

        public init(sequence: Int64) {
            self.sequence = sequence
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
