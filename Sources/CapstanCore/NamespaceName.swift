/// The rules for namespace names, which also form the first part of every config key.
public enum NamespaceName {
    public static let maxLength = 63

    /// Checks that `name` is 1–63 characters of `a-z`, `0-9` and `-`, starting and ending with a
    /// letter or digit.
    ///
    /// - Throws: `CapstanError` with code `invalidNamespace`, naming the first problem found.
    public static func validate(_ name: String) throws(CapstanError) {
        guard !name.isEmpty else {
            throw CapstanError(.invalidNamespace, "namespace is empty: use 1-\(maxLength) characters of a-z, 0-9 and \"-\"")
        }
        try validatePrefix(name, of: "namespace")
        if name.last == "-" {
            throw CapstanError(.invalidNamespace, "namespace \(name.quoted) must end with a letter or digit")
        }
    }

    /// Checks that `text` could begin a valid namespace name: allowed characters, length and a
    /// first character that is a letter or digit. `what` names the text in messages.
    static func validatePrefix(_ text: String, of what: String) throws(CapstanError) {
        // Bytes first (every allowed character is one ASCII byte); characters only to name the
        // first bad one.
        let allowed = text.utf8.allSatisfy(isAllowed(byte:))
        if !allowed {
            for (offset, character) in text.enumerated() where !isAllowed(character) {
                throw CapstanError(
                    .invalidNamespace,
                    "\(what) \(text.quotedExcerpt) has invalid character \(String(character).quoted) at position \(offset + 1): use a-z, 0-9 and \"-\""
                )
            }
        }
        if text.first == "-" {
            throw CapstanError(.invalidNamespace, "\(what) \(text.quoted) must start with a letter or digit")
        }
        let count = allowed ? text.utf8.count : text.count
        if count > maxLength {
            throw CapstanError(
                .invalidNamespace,
                "\(what) \(text.quotedExcerpt) is \(count) characters long: the limit is \(maxLength)"
            )
        }
    }

    static func isAllowed(byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"): true
        default: false
        }
    }

    static func isAllowed(_ character: Character) -> Bool {
        switch character {
        case "a"..."z", "0"..."9", "-": character.isASCII
        default: false
        }
    }
}
