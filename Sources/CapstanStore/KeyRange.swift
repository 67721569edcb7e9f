/// Which keys an operation covers: one key, every key under a prefix, or a half-open interval.
///
/// Mirrors etcd's `key` / `range_end` pair: `.prefix(p)` is `key = p, range_end = p + 1`.
public enum KeyRange: Sendable, Hashable {
    case key(String)
    case prefix(String)
    /// Keys `k` with `from <= k < to` in byte order.
    case interval(from: String, to: String)

    /// Lower bound (inclusive) and upper bound (exclusive; nil means unbounded) as UTF-8 bytes.
    public var bounds: (lower: [UInt8], upper: [UInt8]?) {
        switch self {
        case .key(let key):
            return (Array(key.utf8), Array(key.utf8) + [0])
        case .prefix(let prefix):
            return (Array(prefix.utf8), Self.prefixEnd(Array(prefix.utf8)))
        case .interval(let from, let to):
            return (Array(from.utf8), Array(to.utf8))
        }
    }

    /// Whether `key` falls in the range.
    public func contains(_ key: String) -> Bool {
        switch self {
        case .key(let only):
            return key == only
        case .prefix(let prefix):
            return key.utf8.starts(with: prefix.utf8)
        case .interval(let from, let to):
            let bytes = Array(key.utf8)
            return !bytes.lexicographicallyPrecedes(Array(from.utf8)) && bytes.lexicographicallyPrecedes(Array(to.utf8))
        }
    }

    /// The smallest byte string greater than every string with `prefix`, or nil when there is none
    /// (empty prefix or all 0xFF), which means "to the end of the key space".
    public static func prefixEnd(_ prefix: [UInt8]) -> [UInt8]? {
        var end = prefix
        while let last = end.last {
            if last < 0xFF {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return nil
    }
}
