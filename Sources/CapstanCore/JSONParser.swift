/// A strict RFC 8259 JSON parser that reports where the first problem is.
///
/// It is stricter than the RFC in one way: an object may not repeat a key, because a config
/// with two values for one key is a mistake whichever one wins.
struct JSONParser {
    /// The deepest nesting of arrays and objects accepted.
    static let maxDepth = 512

    private let bytes: [UInt8]
    private var index = 0
    private var depth = 0

    private init(_ content: String) {
        bytes = Array(content.utf8)
    }

    static func parse(_ content: String) throws(CapstanError) -> ConfigValue {
        var parser = JSONParser(content)
        return try parser.parseDocument()
    }

    private mutating func parseDocument() throws(CapstanError) -> ConfigValue {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) {
            index = 3  // a byte order mark carries no meaning in UTF-8
        }
        skipWhitespace()
        let value = try parseValue()
        skipWhitespace()
        guard index == bytes.count else {
            throw error("unexpected \(describeCurrent()) after the top-level value")
        }
        return value
    }

    // MARK: Values

    private mutating func parseValue() throws(CapstanError) -> ConfigValue {
        guard let byte = current else {
            throw error(bytes.isEmpty ? "empty document: expected a value" : "unexpected end of input: expected a value")
        }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return try parseLiteral()
        default: throw error("unexpected \(describeCurrent()): expected a value")
        }
    }

    private mutating func parseObject() throws(CapstanError) -> ConfigValue {
        try enterContainer()
        index += 1
        var object: [String: ConfigValue] = [:]
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return .object(object)
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else {
                if current == UInt8(ascii: "}"), !object.isEmpty {
                    throw error("trailing comma before \"}\"")
                }
                throw error("unexpected \(describeCurrent()): expected a string key")
            }
            let keyStart = index
            let key = try parseString()
            guard object[key] == nil else {
                throw error("duplicate key \(key.quotedExcerpt)", at: keyStart)
            }
            skipWhitespace()
            guard current == UInt8(ascii: ":") else {
                throw error("unexpected \(describeCurrent()): expected \":\" after key \(key.quotedExcerpt)")
            }
            index += 1
            skipWhitespace()
            object[key] = try parseValue()
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","):
                index += 1
            case UInt8(ascii: "}"):
                index += 1
                depth -= 1
                return .object(object)
            default:
                throw error("unexpected \(describeCurrent()): expected \",\" or \"}\" in object")
            }
        }
    }

    private mutating func parseArray() throws(CapstanError) -> ConfigValue {
        try enterContainer()
        index += 1
        var array: [ConfigValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return .array(array)
        }
        while true {
            skipWhitespace()
            if current == UInt8(ascii: "]"), !array.isEmpty {
                throw error("trailing comma before \"]\"")
            }
            array.append(try parseValue())
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","):
                index += 1
            case UInt8(ascii: "]"):
                index += 1
                depth -= 1
                return .array(array)
            default:
                throw error("unexpected \(describeCurrent()): expected \",\" or \"]\" in array")
            }
        }
    }

    private mutating func enterContainer() throws(CapstanError) {
        depth += 1
        guard depth <= Self.maxDepth else {
            throw error("nesting deeper than \(Self.maxDepth) levels")
        }
    }

    private mutating func parseLiteral() throws(CapstanError) -> ConfigValue {
        let start = index
        while let byte = current, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) {
            index += 1
        }
        let word = String(decoding: bytes[start..<index], as: UTF8.self)
        switch word {
        case "true": return .bool(true)
        case "false": return .bool(false)
        case "null": return .null
        default: throw error("invalid literal \(word.quotedExcerpt): expected true, false or null", at: start)
        }
    }

    // MARK: Numbers

    private mutating func parseNumber() throws(CapstanError) -> ConfigValue {
        let start = index
        if current == UInt8(ascii: "-") {
            index += 1
        }
        guard let first = current, isDigit(first) else {
            throw error("invalid number \(numberText(from: start).quoted): expected a digit after \"-\"", at: start)
        }
        index += 1
        if first == UInt8(ascii: "0"), let next = current, isDigit(next) {
            throw error("invalid number \(numberText(from: start).quoted): leading zeros are not allowed", at: start)
        }
        skipDigits()
        var isInteger = true
        if current == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard let next = current, isDigit(next) else {
                throw error("invalid number \(numberText(from: start).quoted): expected a digit after \".\"", at: start)
            }
            skipDigits()
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") {
                index += 1
            }
            guard let next = current, isDigit(next) else {
                throw error("invalid number \(numberText(from: start).quoted): expected a digit in the exponent", at: start)
            }
            skipDigits()
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        if isInteger, let value = Int64(text) {
            return .int(value)
        }
        guard let value = Double(text), value.isFinite else {
            throw error("number \(text.quotedExcerpt) is out of range", at: start)
        }
        return .double(value)
    }

    private mutating func skipDigits() {
        while let byte = current, isDigit(byte) {
            index += 1
        }
    }

    /// The number-like text from `start`, for messages about a malformed number.
    private func numberText(from start: Int) -> String {
        var end = start
        while end < bytes.count, isNumberLike(bytes[end]) {
            end += 1
        }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }

    private func isDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private func isNumberLike(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "."), UInt8(ascii: "+"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }

    // MARK: Strings

    private mutating func parseString() throws(CapstanError) -> String {
        let start = index
        index += 1
        var buffer: [UInt8] = []
        while true {
            guard let byte = current else {
                throw error("unterminated string", at: start)
            }
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return String(decoding: buffer, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try parseEscape(into: &buffer)
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                throw error("unterminated string: a line break must be written \\n inside a string", at: start)
            case 0..<0x20:
                throw error("control character U+\(hex4(UInt32(byte))) in string: escape it")
            default:
                buffer.append(byte)
                index += 1
            }
        }
    }

    private mutating func parseEscape(into buffer: inout [UInt8]) throws(CapstanError) {
        let start = index
        index += 1
        guard let byte = current else {
            throw error("unterminated string", at: start)
        }
        index += 1
        let simple: UInt8? = switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): byte
        case UInt8(ascii: "b"): 0x08
        case UInt8(ascii: "f"): 0x0C
        case UInt8(ascii: "n"): UInt8(ascii: "\n")
        case UInt8(ascii: "r"): UInt8(ascii: "\r")
        case UInt8(ascii: "t"): UInt8(ascii: "\t")
        default: nil
        }
        if let simple {
            buffer.append(simple)
            return
        }
        guard byte == UInt8(ascii: "u") else {
            index = start
            let escape = String(decoding: bytes[start...].prefix(2), as: UTF8.self)
            throw error("invalid escape \(escape.quoted) in string")
        }
        var scalarValue = try parseHex4(escapeStart: start)
        if (0xD800..<0xDC00).contains(scalarValue) {
            let lowStart = index
            guard bytes[index...].starts(with: [UInt8(ascii: "\\"), UInt8(ascii: "u")]) else {
                throw error("unpaired UTF-16 surrogate \\u\(hex4(scalarValue)) in string", at: start)
            }
            index += 2
            let low = try parseHex4(escapeStart: lowStart)
            guard (0xDC00..<0xE000).contains(low) else {
                throw error("unpaired UTF-16 surrogate \\u\(hex4(scalarValue)) in string", at: start)
            }
            scalarValue = 0x10000 + ((scalarValue - 0xD800) << 10) + (low - 0xDC00)
        }
        guard let scalar = Unicode.Scalar(scalarValue) else {
            throw error("unpaired UTF-16 surrogate \\u\(hex4(scalarValue)) in string", at: start)
        }
        buffer.append(contentsOf: String(Character(scalar)).utf8)
    }

    /// Reads the four hex digits after "\u"; `index` is just past the "u".
    private mutating func parseHex4(escapeStart: Int) throws(CapstanError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard index < bytes.count, let digit = hexValue(bytes[index]) else {
                let escape = String(decoding: bytes[escapeStart..<min(escapeStart + 6, bytes.count)], as: UTF8.self)
                throw error("invalid unicode escape \(escape.quoted): expected 4 hex digits", at: escapeStart)
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private func hex4(_ value: UInt32) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    // MARK: Reading

    private var current: UInt8? {
        index < bytes.count ? bytes[index] : nil
    }

    private mutating func skipWhitespace() {
        while let byte = current,
            byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
        {
            index += 1
        }
    }

    /// The character at `index`, quoted, or "end of input".
    private func describeCurrent() -> String {
        guard index < bytes.count else { return "end of input" }
        var scalarEnd = index + 1
        while scalarEnd < bytes.count, scalarEnd < index + 4, (0x80..<0xC0).contains(bytes[scalarEnd]) {
            scalarEnd += 1
        }
        return String(decoding: bytes[index..<scalarEnd], as: UTF8.self).quoted
    }

    private func error(_ reason: String, at offset: Int? = nil) -> CapstanError {
        .invalidContent("invalid JSON: \(reason)", at: SourcePosition(utf8Offset: offset ?? index, in: bytes))
    }
}
