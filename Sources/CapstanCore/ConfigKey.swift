/// The full name of a config: `NAMESPACE/PATH`, e.g. `prod/order-service/app.yaml`.
///
/// Keys order as their text does, character by character, which is how a store sorts them.
public struct ConfigKey: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// The longest key, in UTF-8 bytes.
    public static let maxLength = 512

    public let namespace: String
    /// One or more segments separated by "/".
    public let path: String
    /// `NAMESPACE/PATH`, kept whole: a write uses it for its lock, its store keys and its answer.
    public let description: String

    /// Parses `NAMESPACE/PATH`.
    ///
    /// - Throws: `CapstanError` with code `invalidNamespace` for a bad namespace part and
    ///   `invalidKey` for anything else, pointing at the first problem.
    public init(_ string: String) throws(CapstanError) {
        guard !string.isEmpty else {
            throw CapstanError(.invalidKey, "key is empty: use NAMESPACE/PATH")
        }
        let length = string.utf8.count
        guard length <= Self.maxLength else {
            throw CapstanError(
                .invalidKey, "key \(string.quotedExcerpt) is \(length) bytes long: the limit is \(Self.maxLength)")
        }
        guard let slash = string.firstIndex(of: "/") else {
            throw CapstanError(.invalidKey, "key \(string.quoted) has no path: use NAMESPACE/PATH")
        }
        let namespace = String(string[..<slash])
        guard !namespace.isEmpty else {
            throw CapstanError(.invalidKey, "key \(string.quoted) starts with \"/\": use NAMESPACE/PATH")
        }
        do {
            try NamespaceName.validate(namespace)
        } catch {
            throw CapstanError(.invalidNamespace, "key \(string.quoted): \(error.message)")
        }
        let path = String(string[string.index(after: slash)...])
        guard !path.isEmpty else {
            throw CapstanError(.invalidKey, "key \(string.quoted) has no path: use NAMESPACE/PATH")
        }
        try Self.validatePath(path, offset: namespace.count + 1, of: string, isPrefix: false)
        self.namespace = namespace
        self.path = path
        self.description = string
    }

    /// Builds a key from its two parts.
    ///
    /// - Throws: `CapstanError` as `init(_:)` does.
    public init(namespace: String, path: String) throws(CapstanError) {
        try NamespaceName.validate(namespace)
        try self.init("\(namespace)/\(path)")
    }

    // The parts follow from the whole text: equality and hashing need only it.
    public static func == (lhs: ConfigKey, rhs: ConfigKey) -> Bool { lhs.description == rhs.description }

    public func hash(into hasher: inout Hasher) { hasher.combine(description) }

    /// The lowercased extension of the last path segment, or nil when it has none.
    public var fileExtension: String? {
        Self.fileExtension(ofPath: path)
    }

    public static func < (lhs: ConfigKey, rhs: ConfigKey) -> Bool {
        lhs.description < rhs.description
    }

    /// The lowercased text after the last "." of the last segment of `path`; nil when there is
    /// no such dot, or it starts or ends the segment (".env", "notes.").
    static func fileExtension(ofPath path: String) -> String? {
        let segment = path.lastIndex(of: "/").map { path[path.index(after: $0)...] } ?? path[...]
        guard let dot = segment.lastIndex(of: "."), dot != segment.startIndex else { return nil }
        let ext = segment[segment.index(after: dot)...]
        return ext.isEmpty ? nil : ext.lowercased()
    }

    /// Checks the segments of `path`, which starts `offset` characters into `whole`.
    ///
    /// With `isPrefix`, the last segment may be partial: it may be empty or "." or "..", since
    /// a longer key could still complete it.
    static func validatePath(
        _ path: String, offset: Int, of whole: String, isPrefix: Bool
    ) throws(CapstanError) {
        // Every write and read checks its key: the usual valid one passes in one scan of its
        // bytes; the walk below only runs to name what is wrong.
        if isPlainValidPath(path, isPrefix: isPrefix) { return }
        try checkSegments(path, offset: offset, of: whole, isPrefix: isPrefix)
    }

    /// Walks `path`'s segments and throws for the first problem, with its position.
    static func checkSegments(_ path: String, offset: Int, of whole: String, isPrefix: Bool) throws(CapstanError) {
        let what = isPrefix ? "prefix" : "key"
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        var position = offset + 1
        for (index, segment) in segments.enumerated() {
            let isLast = index == segments.count - 1
            if segment.isEmpty {
                if isLast {
                    if !isPrefix {
                        throw CapstanError(.invalidKey, "\(what) \(whole.quoted) ends with \"/\": name a file after it")
                    }
                } else {
                    throw CapstanError(.invalidKey, "\(what) \(whole.quoted) has an empty segment at position \(position)")
                }
            }
            // Bytes first (every allowed character is one ASCII byte); characters only to name
            // the first bad one.
            if !segment.utf8.allSatisfy(isAllowedInPath(byte:)) {
                for (characterOffset, character) in segment.enumerated() where !isAllowedInPath(character) {
                    throw CapstanError(
                        .invalidKey,
                        "\(what) \(whole.quotedExcerpt) has invalid character \(String(character).quoted) at position \(position + characterOffset): use A-Z a-z 0-9 . _ - and \"/\" between segments"
                    )
                }
            }
            if segment == "." || segment == "..", !(isPrefix && isLast) {
                throw CapstanError(.invalidKey, "\(what) \(whole.quoted) has a \(String(segment).quoted) segment")
            }
            position += segment.count + 1
        }
    }

    /// True when `path` is valid: allowed bytes only, no empty, "." or ".." segment (a prefix's
    /// last segment may be any of those).
    static func isPlainValidPath(_ path: String, isPrefix: Bool) -> Bool {
        var segmentLength = 0
        var dots = 0
        for byte in path.utf8 {
            if byte == UInt8(ascii: "/") {
                if segmentLength == 0 || dots == segmentLength && dots <= 2 { return false }
                segmentLength = 0
                dots = 0
                continue
            }
            guard isAllowedInPath(byte: byte) else { return false }
            segmentLength += 1
            if byte == UInt8(ascii: ".") { dots += 1 }
        }
        return isPrefix || (segmentLength > 0 && !(dots == segmentLength && dots <= 2))
    }

    static func isAllowedInPath(byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default: false
        }
    }

    static func isAllowedInPath(_ character: Character) -> Bool {
        switch character {
        case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": character.isASCII
        default: false
        }
    }
}

extension ConfigKey: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let string = try container.decode(String.self)
        do {
            try self.init(string)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.message)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
