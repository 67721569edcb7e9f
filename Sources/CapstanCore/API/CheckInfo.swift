import Foundation

/// A health check the agents of the nodes a selector picks run: an HTTP request, a TCP connect
/// or a command, every interval.
public struct CheckSpec: Codable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable, Hashable, CaseIterable {
        /// GET the URL; a 2xx answer within the timeout passes.
        case http
        /// Connect to HOST:PORT; a connection within the timeout passes.
        case tcp
        /// Run the command; exit status 0 within the timeout passes.
        case command
    }

    public var selector: String
    public var kind: Kind
    /// The URL, `HOST:PORT` or command line.
    public var target: String
    /// For a command: run it through `/bin/sh -c` instead of as argv.
    public var shell: Bool
    public var intervalMilliseconds: Int64
    public var timeoutMilliseconds: Int64
    /// Consecutive failures that turn the check `critical`.
    public var failuresBeforeCritical: Int
    /// Consecutive successes that turn it `passing`.
    public var successesBeforePassing: Int

    public init(
        selector: String, kind: Kind, target: String, shell: Bool = false, intervalMilliseconds: Int64 = 10_000,
        timeoutMilliseconds: Int64 = 2_000, failuresBeforeCritical: Int = 3, successesBeforePassing: Int = 2
    ) {
        self.selector = selector
        self.kind = kind
        self.target = target
        self.shell = shell
        self.intervalMilliseconds = intervalMilliseconds
        self.timeoutMilliseconds = timeoutMilliseconds
        self.failuresBeforeCritical = failuresBeforeCritical
        self.successesBeforePassing = successesBeforePassing
    }
}

public enum CheckStatus: String, Codable, Sendable, Hashable, CaseIterable {
    /// Not enough results yet either way.
    case pending
    case passing
    case critical
}

/// A check as an agent receives it.
public struct CheckAssignment: Codable, Sendable, Hashable {
    public var name: String
    public var spec: CheckSpec

    public init(name: String, spec: CheckSpec) {
        self.name = name
        self.spec = spec
    }
}

/// Agent → server: a check's status changed (or is resent after a reconnect).
public struct CheckResult: Codable, Sendable, Hashable {
    public var check: String
    public var status: CheckStatus
    /// What the last run said: the HTTP status, the connect error, the command's output (its end).
    public var output: String
    public var time: Date

    public init(check: String, status: CheckStatus, output: String, time: Date) {
        self.check = check
        self.status = status
        self.output = output
        self.time = time
    }
}

public struct CheckInfo: Codable, Sendable, Hashable {
    public struct Node: Codable, Sendable, Hashable {
        public var name: String
        public var status: CheckStatus
        public var output: String?
        public var since: Date?

        public init(name: String, status: CheckStatus, output: String?, since: Date?) {
            self.name = name
            self.status = status
            self.output = output
            self.since = since
        }
    }

    public var name: String
    public var spec: CheckSpec
    public var updatedAt: Date
    /// The nodes the selector picks now, with the status each reported (`pending` until one).
    public var nodes: [Node]?
    /// For a command check: the selectors of its author's job run rules; it runs only on nodes
    /// matching one of them. Absent when its author may run jobs anywhere.
    public var onlyOn: [String]?

    public init(name: String, spec: CheckSpec, updatedAt: Date, nodes: [Node]? = nil, onlyOn: [String]? = nil) {
        self.onlyOn = onlyOn
        self.name = name
        self.spec = spec
        self.updatedAt = updatedAt
        self.nodes = nodes
    }
}

public struct CheckList: Codable, Sendable, Hashable {
    public var items: [CheckInfo]

    public init(items: [CheckInfo]) {
        self.items = items
    }
}
