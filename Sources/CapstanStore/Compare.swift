import Foundation

/// One condition of a transaction, evaluated against the current state of a key.
///
/// A missing key has version, create revision and mod revision 0, and no value or lease,
/// exactly as in etcd.
public struct Compare: Sendable, Hashable {
    public enum Target: Sendable, Hashable {
        case version(Int64)
        case createRevision(Int64)
        case modRevision(Int64)
        case value(Data)
        case lease(LeaseID)
    }

    public enum Operator: Sendable, Hashable {
        case equal, notEqual, less, greater
    }

    public var key: String
    public var target: Target
    public var op: Operator

    public init(key: String, _ target: Target, _ op: Operator = .equal) {
        self.key = key
        self.target = target
        self.op = op
    }

    /// The key exists (its version is above zero).
    public static func exists(_ key: String) -> Compare { Compare(key: key, .version(0), .greater) }
    /// The key does not exist.
    public static func absent(_ key: String) -> Compare { Compare(key: key, .version(0), .equal) }

    /// Evaluates the compare against `current` (nil when the key is absent).
    public func holds(for current: KeyValue?) -> Bool {
        switch target {
        case .version(let expected):
            return Self.apply(op, current?.version ?? 0, expected)
        case .createRevision(let expected):
            return Self.apply(op, current?.createRevision ?? 0, expected)
        case .modRevision(let expected):
            return Self.apply(op, current?.modRevision ?? 0, expected)
        case .lease(let expected):
            return Self.apply(op, current?.lease ?? 0, expected)
        case .value(let expected):
            guard let current else { return false }
            let lhs = Array(current.value)
            let rhs = Array(expected)
            switch op {
            case .equal: return lhs == rhs
            case .notEqual: return lhs != rhs
            case .less: return lhs.lexicographicallyPrecedes(rhs)
            case .greater: return rhs.lexicographicallyPrecedes(lhs)
            }
        }
    }

    private static func apply(_ op: Operator, _ lhs: Int64, _ rhs: Int64) -> Bool {
        switch op {
        case .equal: return lhs == rhs
        case .notEqual: return lhs != rhs
        case .less: return lhs < rhs
        case .greater: return lhs > rhs
        }
    }
}
