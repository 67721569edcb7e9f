/// An error that crosses module boundaries: a stable code, a human message and, for content
/// errors, the 1-based position of the problem.
public struct CapstanError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable snake_case identifier; the HTTP edge and the CLI map on it, never on the message.
    public struct Code: Hashable, Sendable, RawRepresentable, Codable, CustomStringConvertible {
        public let rawValue: String

        public init(rawValue: String) {
            self.rawValue = rawValue
        }

        public var description: String { rawValue }

        public static let invalidKey = Code(rawValue: "invalid_key")
        public static let invalidNamespace = Code(rawValue: "invalid_namespace")
        public static let invalidContent = Code(rawValue: "invalid_content")
        public static let invalidFormat = Code(rawValue: "invalid_format")
        public static let invalidArgument = Code(rawValue: "invalid_argument")
        public static let invalidEncoding = Code(rawValue: "invalid_encoding")
        public static let invalidSelector = Code(rawValue: "invalid_selector")
        public static let unauthorized = Code(rawValue: "unauthorized")
        public static let forbidden = Code(rawValue: "forbidden")
        public static let rateLimited = Code(rawValue: "rate_limited")
        public static let nodeNotFound = Code(rawValue: "node_not_found")
        public static let namespaceNotFound = Code(rawValue: "namespace_not_found")
        public static let namespaceExists = Code(rawValue: "namespace_exists")
        public static let namespaceNotEmpty = Code(rawValue: "namespace_not_empty")
        public static let configNotFound = Code(rawValue: "config_not_found")
        public static let revisionNotFound = Code(rawValue: "revision_not_found")
        public static let payloadTooLarge = Code(rawValue: "payload_too_large")
        public static let preconditionFailed = Code(rawValue: "precondition_failed")
        public static let compacted = Code(rawValue: "compacted")
        public static let futureRevision = Code(rawValue: "future_revision")
        public static let notFound = Code(rawValue: "not_found")
        public static let methodNotAllowed = Code(rawValue: "method_not_allowed")
        public static let conflict = Code(rawValue: "conflict")
        public static let unavailable = Code(rawValue: "unavailable")
        public static let `internal` = Code(rawValue: "internal")
    }

    public var code: Code
    public var message: String
    /// 1-based line of the problem, for `invalid_content`.
    public var line: Int?
    /// 1-based column of the problem, counted in Unicode scalars.
    public var column: Int?

    public init(_ code: Code, _ message: String, line: Int? = nil, column: Int? = nil) {
        self.code = code
        self.message = message
        self.line = line
        self.column = column
    }

    /// The message, followed by the position when one is known.
    public var description: String {
        switch (line, column) {
        case let (line?, column?): "\(message) (line \(line), column \(column))"
        case let (line?, nil): "\(message) (line \(line))"
        case let (nil, column?): "\(message) (column \(column))"
        default: message
        }
    }
}
