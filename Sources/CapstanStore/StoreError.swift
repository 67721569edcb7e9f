/// An error from a store engine.
public struct StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case compacted, futureRevision, leaseNotFound, invalidArgument, closed, io, unavailable
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The requested revision is older than the oldest one kept; resync with a range read.
        public static let compacted = Code(.compacted)
        /// The requested revision has not been written yet.
        public static let futureRevision = Code(.futureRevision)
        public static let leaseNotFound = Code(.leaseNotFound)
        public static let invalidArgument = Code(.invalidArgument)
        public static let closed = Code(.closed)
        /// The engine could not read or write its storage.
        public static let io = Code(.io)
        /// The storage is there but cannot serve now (an etcd cluster without a leader).
        public static let unavailable = Code(.unavailable)

        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String
    /// For `compacted`: the oldest revision still available.
    public var compactRevision: Int64?
    public var underlying: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, compactRevision: Int64? = nil, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.compactRevision = compactRevision
        self.underlying = underlying
    }

    public var description: String { message }

    public static func == (lhs: StoreError, rhs: StoreError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.compactRevision == rhs.compactRevision
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(message)
    }

    static func compacted(requested: Int64, compactRevision: Int64) -> StoreError {
        StoreError(
            .compacted,
            "revision \(requested) has been compacted; the oldest available is \(compactRevision)",
            compactRevision: compactRevision
        )
    }
}
