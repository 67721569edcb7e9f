/// Picks nodes by their labels and name: `env=prod,role in (web,api),!canary,zone!=b,name=web-*`.
///
/// Requirements are separated by commas and must all hold:
///
/// | Requirement | Holds for a node that |
/// |---|---|
/// | `k=v` (or `k==v`) | has label `k` with value `v` |
/// | `k!=v` | has no label `k`, or one with another value |
/// | `k in (a,b)` | has label `k` with one of the values |
/// | `k notin (a,b)` | has no label `k`, or one with none of the values |
/// | `k` | has label `k` |
/// | `!k` | has no label `k` |
/// | `name=GLOB`, `name!=GLOB` | has (has not) a name matching the glob (`*`, `?`, `[abc]`, `[a-z]`) |
/// | `name in (a,b)`, `name notin (a,b)` | has (has not) one of the names |
///
/// The empty selector picks every node. `name` always means the node's name, never a label.
public struct Selector: Sendable, Hashable, CustomStringConvertible {
    public enum Requirement: Sendable, Hashable {
        case equals(key: String, value: String)
        case notEquals(key: String, value: String)
        case `in`(key: String, values: [String])
        case notIn(key: String, values: [String])
        case exists(key: String)
        case notExists(key: String)
        case nameMatches(Glob)
        case nameDoesNotMatch(Glob)
        case nameIn([String])
        case nameNotIn([String])
    }

    public let requirements: [Requirement]
    /// The text it was parsed from.
    public let text: String

    /// The selector that picks every node.
    public static let everything = Selector(requirements: [], text: "")

    private init(requirements: [Requirement], text: String) {
        self.requirements = requirements
        self.text = text
    }

    /// Parses `text`.
    ///
    /// - Throws: `CapstanError` with code `invalidSelector` and the 1-based column of the problem.
    public init(_ text: String) throws(CapstanError) {
        var parser = SelectorParser(text)
        self.requirements = try parser.parse()
        self.text = text
    }

    /// Whether a node with `labels` and `name` meets every requirement.
    public func matches(labels: [String: String], name: String) -> Bool {
        requirements.allSatisfy { $0.matches(labels: labels, name: name) }
    }

    public var description: String { text }

    /// The label keys the selector reads (not `name`).
    public var labelKeys: Set<String> {
        Set(
            requirements.compactMap { requirement in
                switch requirement {
                case .equals(let key, _), .notEquals(let key, _), .in(let key, _), .notIn(let key, _), .exists(let key),
                    .notExists(let key):
                    key
                case .nameMatches, .nameDoesNotMatch, .nameIn, .nameNotIn:
                    nil
                }
            })
    }
}

extension Selector.Requirement {
    func matches(labels: [String: String], name: String) -> Bool {
        switch self {
        case .equals(let key, let value): labels[key] == value
        case .notEquals(let key, let value): labels[key] != value
        case .in(let key, let values): labels[key].map(values.contains) ?? false
        case .notIn(let key, let values): !(labels[key].map(values.contains) ?? false)
        case .exists(let key): labels[key] != nil
        case .notExists(let key): labels[key] == nil
        case .nameMatches(let glob): glob.matches(name)
        case .nameDoesNotMatch(let glob): !glob.matches(name)
        case .nameIn(let names): names.contains(name)
        case .nameNotIn(let names): !names.contains(name)
        }
    }
}

/// A shell-style pattern: `*` any run of characters, `?` one character, `[abc]` / `[a-z]` /
/// `[!a-z]` one character of (not of) a set. Every other character stands for itself.
public struct Glob: Sendable, Hashable, CustomStringConvertible {
    public let pattern: String
    private let elements: [Element]

    enum Element: Sendable, Hashable {
        case literal(Character)
        case anyOne
        case anyRun
        case set(ranges: [ClosedRange<Character>], negated: Bool)
    }

    /// - Throws: `CapstanError` (`invalidSelector`) for an unclosed `[`; `column` is where the
    ///   pattern starts in the text it came from, so errors point into that text.
    public init(_ pattern: String, column: Int = 1) throws(CapstanError) {
        self.pattern = pattern
        var elements: [Element] = []
        let characters = Array(pattern)
        var index = 0
        while index < characters.count {
            let character = characters[index]
            switch character {
            case "*": if elements.last != .anyRun { elements.append(.anyRun) }
            case "?": elements.append(.anyOne)
            case "[":
                var cursor = index + 1
                let negated = cursor < characters.count && characters[cursor] == "!"
                if negated { cursor += 1 }
                var ranges: [ClosedRange<Character>] = []
                var closed = false
                while cursor < characters.count {
                    let first = characters[cursor]
                    if first == "]" && !ranges.isEmpty {
                        closed = true
                        break
                    }
                    if cursor + 2 < characters.count, characters[cursor + 1] == "-", characters[cursor + 2] != "]" {
                        let last = characters[cursor + 2]
                        guard first <= last else {
                            throw CapstanError(
                                .invalidSelector, "glob range \(first)-\(last) is backwards", column: column + cursor)
                        }
                        ranges.append(first...last)
                        cursor += 3
                    } else {
                        ranges.append(first...first)
                        cursor += 1
                    }
                }
                guard closed else {
                    throw CapstanError(.invalidSelector, "glob has \"[\" without a closing \"]\"", column: column + index)
                }
                elements.append(.set(ranges: ranges, negated: negated))
                index = cursor
            default: elements.append(.literal(character))
            }
            index += 1
        }
        self.elements = elements
    }

    public var description: String { pattern }

    public func matches(_ text: String) -> Bool {
        let characters = Array(text)
        // Backtracking over the last `*` only: linear for patterns without stars, and never
        // exponential (the classic wildcard-matching loop).
        var (p, t) = (0, 0)
        var star: (pattern: Int, text: Int)?
        while t < characters.count {
            if p < elements.count {
                switch elements[p] {
                case .anyRun:
                    star = (p, t)
                    p += 1
                    continue
                case .anyOne:
                    p += 1
                    t += 1
                    continue
                case .literal(let character) where character == characters[t]:
                    p += 1
                    t += 1
                    continue
                case .set(let ranges, let negated) where ranges.contains { $0.contains(characters[t]) } != negated:
                    p += 1
                    t += 1
                    continue
                default:
                    break
                }
            }
            guard let last = star else { return false }
            star = (last.pattern, last.text + 1)
            p = last.pattern + 1
            t = last.text + 1
        }
        while p < elements.count, elements[p] == .anyRun { p += 1 }
        return p == elements.count
    }
}

/// The selector grammar, with errors that point at a column.
private struct SelectorParser {
    let characters: [Character]
    var index = 0

    init(_ text: String) {
        characters = Array(text)
    }

    /// 1-based column of `index`.
    var column: Int { index + 1 }

    func error(_ message: String, at position: Int? = nil) -> CapstanError {
        CapstanError(.invalidSelector, "selector: \(message)", column: (position ?? index) + 1)
    }

    mutating func skipSpaces() {
        while index < characters.count, characters[index].isWhitespace { index += 1 }
    }

    var atEnd: Bool { index >= characters.count }

    mutating func parse() throws(CapstanError) -> [Selector.Requirement] {
        var requirements: [Selector.Requirement] = []
        skipSpaces()
        if atEnd { return [] }
        while true {
            requirements.append(try requirement())
            skipSpaces()
            if atEnd { return requirements }
            guard characters[index] == "," else {
                throw error("expected \",\" between requirements, found \(describe(characters[index]))")
            }
            index += 1
            skipSpaces()
            if atEnd { throw error("expected a requirement after \",\"") }
        }
    }

    mutating func requirement() throws(CapstanError) -> Selector.Requirement {
        if characters[index] == "!" {
            index += 1
            skipSpaces()
            let start = index
            let key = try self.key()
            if key == "name" { throw error("\"!name\" never holds: every node has a name", at: start) }
            return .notExists(key: key)
        }
        let keyStart = index
        let key = try self.key()
        skipSpaces()
        let isName = key == "name"
        if atEnd || characters[index] == "," {
            if isName { throw error("\"name\" needs a pattern: name=GLOB", at: keyStart) }
            return .exists(key: key)
        }
        if characters[index] == "=" || (characters[index] == "!" && peek(1) == "=") {
            let negated = characters[index] == "!"
            index += negated ? 2 : 1
            if !negated, !atEnd, characters[index] == "=" { index += 1 }
            skipSpaces()
            let valueStart = index
            let value = try self.value(glob: isName)
            if isName {
                let glob = try Glob(value, column: valueStart + 1)
                return negated ? .nameDoesNotMatch(glob) : .nameMatches(glob)
            }
            return negated ? .notEquals(key: key, value: value) : .equals(key: key, value: value)
        }
        let wordStart = index
        let word = readWord()
        switch word {
        case "in", "notin":
            let values = try set()
            switch (isName, word == "in") {
            case (true, true): return .nameIn(values)
            case (true, false): return .nameNotIn(values)
            case (false, true): return .in(key: key, values: values)
            case (false, false): return .notIn(key: key, values: values)
            }
        case "":
            throw error("expected \"=\", \"!=\", \"in\" or \"notin\" after \(key.quoted), found \(describe(characters[index]))")
        default:
            throw error("expected \"=\", \"!=\", \"in\" or \"notin\" after \(key.quoted), found \(word.quoted)", at: wordStart)
        }
    }

    func peek(_ offset: Int) -> Character? {
        index + offset < characters.count ? characters[index + offset] : nil
    }

    mutating func readWord() -> String {
        let start = index
        while index < characters.count, characters[index].isLetter { index += 1 }
        return String(characters[start..<index])
    }

    /// A label key: letters, digits, `.`, `_`, `-` and `/` (for `example.com/role`), starting
    /// with a letter or digit, at most 253 characters.
    mutating func key() throws(CapstanError) -> String {
        let start = index
        while index < characters.count, Self.isKeyCharacter(characters[index]) { index += 1 }
        guard index > start else {
            if atEnd { throw error("expected a label key") }
            throw error("expected a label key, found \(describe(characters[index]))")
        }
        let key = String(characters[start..<index])
        guard let first = key.first, first.isLetter || first.isNumber else {
            throw error("label key \(key.quoted) must start with a letter or digit", at: start)
        }
        guard key.count <= 253 else { throw error("label key is \(key.count) characters long: the limit is 253", at: start) }
        return key
    }

    /// A label value (or, for `name`, a glob): everything up to a space, `,` or `)`.
    mutating func value(glob: Bool) throws(CapstanError) -> String {
        let start = index
        while index < characters.count, !characters[index].isWhitespace, characters[index] != ",", characters[index] != ")",
            characters[index] != "("
        {
            let character = characters[index]
            guard glob || Self.isValueCharacter(character) else {
                throw error("\(describe(character)) cannot appear in a label value")
            }
            index += 1
        }
        guard index > start else {
            throw atEnd ? error("expected a value") : error("expected a value, found \(describe(characters[index]))")
        }
        let value = String(characters[start..<index])
        guard value.count <= 253 else { throw error("value is \(value.count) characters long: the limit is 253", at: start) }
        return value
    }

    /// `(a, b, c)`: at least one value.
    mutating func set() throws(CapstanError) -> [String] {
        skipSpaces()
        guard !atEnd, characters[index] == "(" else {
            throw atEnd ? error("expected \"(\" to open the list of values") : error("expected \"(\", found \(describe(characters[index]))")
        }
        let open = index
        index += 1
        var values: [String] = []
        while true {
            skipSpaces()
            if atEnd { throw error("\"(\" is never closed", at: open) }
            values.append(try value(glob: false))
            skipSpaces()
            if atEnd { throw error("\"(\" is never closed", at: open) }
            if characters[index] == ")" {
                index += 1
                return values
            }
            guard characters[index] == "," else {
                throw error("expected \",\" or \")\" in the list of values, found \(describe(characters[index]))")
            }
            index += 1
        }
    }

    static func isKeyCharacter(_ character: Character) -> Bool { Labels.isKeyCharacter(character) }

    static func isValueCharacter(_ character: Character) -> Bool { Labels.isValueCharacter(character) }

    func describe(_ character: Character) -> String {
        "\"\(character)\""
    }
}
