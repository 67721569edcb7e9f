/// A prefix of config keys, used to list and watch many keys at once.
///
/// "" matches everything, "prod/" the namespace `prod`, and "prod/order-" every key in `prod`
/// whose path starts with `order-`. The server reads a bare name without "/", such as "prod", as
/// the whole namespace `prod/` (listing `prod` never shows `production/…`); `matches` does the same.
public struct KeyPrefix: Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String

    /// Checks that `string` could begin some valid key.
    ///
    /// - Throws: `CapstanError` with code `invalidNamespace` for a bad namespace part and
    ///   `invalidKey` for anything else.
    public init(_ string: String) throws(CapstanError) {
        let length = string.utf8.count
        guard length <= ConfigKey.maxLength else {
            throw CapstanError(
                .invalidKey, "prefix \(string.quotedExcerpt) is \(length) bytes long: the limit is \(ConfigKey.maxLength)")
        }
        if let slash = string.firstIndex(of: "/") {
            let namespace = String(string[..<slash])
            guard !namespace.isEmpty else {
                throw CapstanError(.invalidKey, "prefix \(string.quoted) starts with \"/\": use NAMESPACE/PATH")
            }
            do {
                try NamespaceName.validate(namespace)
            } catch {
                throw CapstanError(.invalidNamespace, "prefix \(string.quoted): \(error.message)")
            }
            let path = String(string[string.index(after: slash)...])
            try ConfigKey.validatePath(path, offset: namespace.count + 1, of: string, isPrefix: true)
        } else {
            try NamespaceName.validatePrefix(string, of: "prefix")
        }
        self.rawValue = string
    }

    /// The namespace the prefix names completely: the text before the first "/", the whole
    /// prefix when it is a bare name, nil for "".
    public var namespace: String? {
        if rawValue.isEmpty { return nil }
        return rawValue.firstIndex(of: "/").map { String(rawValue[..<$0]) } ?? rawValue
    }

    /// The prefix as keys are compared against it: a bare name stands for "name/".
    public var keyPrefix: String {
        !rawValue.isEmpty && !rawValue.contains("/") ? rawValue + "/" : rawValue
    }

    public var description: String { rawValue }

    public func matches(_ key: ConfigKey) -> Bool {
        key.description.hasPrefix(keyPrefix)
    }
}
