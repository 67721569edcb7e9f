/// Label keys and values, and the `k=v` / `k-` arguments that set and remove them.
public enum Labels {
    /// A character of a label key: ASCII letters and digits, `.`, `_`, `-`, `/`.
    static func isKeyCharacter(_ character: Character) -> Bool {
        character.isASCII && (character.isLetter || character.isNumber || "._-/".contains(character))
    }

    /// A character of a label value: ASCII letters and digits, `.`, `_`, `-`.
    static func isValueCharacter(_ character: Character) -> Bool {
        character.isASCII && (character.isLetter || character.isNumber || "._-".contains(character))
    }

    /// Checks a label key: letters, digits, `.`, `_`, `-`, `/`, starting with a letter or digit,
    /// at most 253 characters; `name` is reserved (selectors read it as the node's name).
    public static func validateKey(_ key: String) throws(CapstanError) {
        guard !key.isEmpty else { throw CapstanError(.invalidArgument, "label key is empty") }
        guard key.count <= 253 else { throw CapstanError(.invalidArgument, "label key is \(key.count) characters long: the limit is 253") }
        guard let first = key.first, first.isASCII, first.isLetter || first.isNumber else {
            throw CapstanError(.invalidArgument, "label key \(key.quoted) must start with a letter or digit")
        }
        if let bad = key.first(where: { !isKeyCharacter($0) }) {
            throw CapstanError(.invalidArgument, "label key \(key.quoted) contains \"\(bad)\": use letters, digits, \".\", \"_\", \"-\" and \"/\"")
        }
        guard key != "name" else {
            throw CapstanError(.invalidArgument, "label key \"name\" is reserved: selectors read name=GLOB as the node's name")
        }
    }

    /// Checks a label value: letters, digits, `.`, `_`, `-`, at most 253 characters (may be empty).
    public static func validateValue(_ value: String, key: String) throws(CapstanError) {
        guard value.count <= 253 else {
            throw CapstanError(.invalidArgument, "value of label \(key.quoted) is \(value.count) characters long: the limit is 253")
        }
        if let bad = value.first(where: { !isValueCharacter($0) }) {
            throw CapstanError(
                .invalidArgument, "value of label \(key.quoted) contains \"\(bad)\": use letters, digits, \".\", \"_\" and \"-\"")
        }
    }

    /// Checks every key and value of `labels`.
    public static func validate(_ labels: [String: String]) throws(CapstanError) {
        for (key, value) in labels.sorted(by: { $0.key < $1.key }) {
            try validateKey(key)
            try validateValue(value, key: key)
        }
    }

    /// Parses `k=v` (set) and `k-` (remove) arguments, as `capstan node label` takes them.
    public static func parseChanges(_ arguments: [String]) throws(CapstanError) -> NodeLabelChange {
        var change = NodeLabelChange()
        for argument in arguments {
            if let equals = argument.firstIndex(of: "=") {
                let key = String(argument[..<equals])
                let value = String(argument[argument.index(after: equals)...])
                try validateKey(key)
                try validateValue(value, key: key)
                change.set[key] = value
            } else if argument.hasSuffix("-"), argument.count > 1 {
                let key = String(argument.dropLast())
                try validateKey(key)
                change.remove.append(key)
            } else {
                throw CapstanError(.invalidArgument, "\(argument.quoted) is neither KEY=VALUE (set) nor KEY- (remove)")
            }
        }
        if let both = change.remove.first(where: { change.set[$0] != nil }) {
            throw CapstanError(.invalidArgument, "label \(both.quoted) is both set and removed")
        }
        return change
    }

    /// Parses `k=v` arguments only, as `capstan agent --label` takes them.
    public static func parseAssignments(_ arguments: [String]) throws(CapstanError) -> [String: String] {
        var labels: [String: String] = [:]
        for argument in arguments {
            guard let equals = argument.firstIndex(of: "=") else {
                throw CapstanError(.invalidArgument, "label \(argument.quoted) is not KEY=VALUE")
            }
            let key = String(argument[..<equals])
            let value = String(argument[argument.index(after: equals)...])
            try validateKey(key)
            try validateValue(value, key: key)
            labels[key] = value
        }
        return labels
    }
}
