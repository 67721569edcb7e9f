/// A parser for Java `.properties` files, following `java.util.Properties.load`.
///
/// Keys stay flat: `server.port` is one key, not a nested object. A repeated key keeps its
/// last value, as in Java. Two things Java accepts are errors here because they are always
/// mistakes: a malformed `\uXXXX` escape and a line with a value but no key.
struct PropertiesParser {
    private let scalars: [Unicode.Scalar]
    private var index = 0

    private init(_ content: String) {
        scalars = Array(content.unicodeScalars)
    }

    static func parse(_ content: String) throws(CapstanError) -> ConfigValue {
        var parser = PropertiesParser(content)
        return .object(try parser.parseEntries())
    }

    private mutating func parseEntries() throws(CapstanError) -> [String: ConfigValue] {
        var entries: [String: ConfigValue] = [:]
        while index < scalars.count {
            skipBlanks()
            guard let scalar = current else { break }
            if Self.isLineBreak(scalar) {
                skipLineBreak()
                continue
            }
            if scalar == "#" || scalar == "!" {
                skipToLineEnd()
                continue
            }
            let keyStart = index
            let key = try readText(isKey: true)
            guard !key.isEmpty else {
                throw .invalidContent(
                    "invalid properties: missing key before \(String(scalars[keyStart]).quoted)", at: position(keyStart))
            }
            skipBlanks()
            if current == "=" || current == ":" {
                index += 1
                skipBlanks()
            }
            entries[key] = .string(try readText(isKey: false))
        }
        return entries
    }

    /// Reads up to an unescaped line break, or for a key up to an unescaped separator, resolving
    /// escapes and joining continued lines.
    private mutating func readText(isKey: Bool) throws(CapstanError) -> String {
        var text = String.UnicodeScalarView()
        while let scalar = current, !Self.isLineBreak(scalar), !(isKey && Self.isKeyTerminator(scalar)) {
            guard scalar == "\\" else {
                text.append(scalar)
                index += 1
                continue
            }
            let escapeStart = index
            index += 1
            guard let escaped = current else { break }  // a backslash at the very end is dropped
            index += 1
            switch escaped {
            case "\n", "\r":
                index -= 1
                skipLineBreak()
                skipBlanks()
            case "t": text.append("\t")
            case "n": text.append("\n")
            case "r": text.append("\r")
            case "f": text.append("\u{0C}")
            case "u": text.append(try readUnicodeEscape(from: escapeStart))
            default: text.append(escaped)
            }
        }
        return String(text)
    }

    /// Reads the hex digits of a `\uXXXX` escape starting at `start`, pairing UTF-16 surrogates.
    private mutating func readUnicodeEscape(from start: Int) throws(CapstanError) -> Unicode.Scalar {
        let high = try readHex4(escapeStart: start)
        var value = high
        if (0xD800..<0xDC00).contains(high) {
            let lowStart = index
            if current == "\\", index + 1 < scalars.count, scalars[index + 1] == "u" {
                index += 2
                let low = try readHex4(escapeStart: lowStart)
                if (0xDC00..<0xE000).contains(low) {
                    value = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                }
            }
        }
        guard let scalar = Unicode.Scalar(value) else {
            throw .invalidContent(
                "invalid properties: unpaired UTF-16 surrogate \(escapeText(from: start).quoted)", at: position(start))
        }
        return scalar
    }

    private mutating func readHex4(escapeStart: Int) throws(CapstanError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let scalar = current, let digit = hexValue(scalar) else {
                throw .invalidContent(
                    "invalid properties: malformed \\uXXXX escape \(escapeText(from: escapeStart).quoted)",
                    at: position(escapeStart))
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    private func hexValue(_ scalar: Unicode.Scalar) -> UInt32? {
        switch scalar {
        case "0"..."9": scalar.value - 0x30
        case "a"..."f": scalar.value - 0x61 + 10
        case "A"..."F": scalar.value - 0x41 + 10
        default: nil
        }
    }

    /// Up to six scalars of the escape at `start`, for messages.
    private func escapeText(from start: Int) -> String {
        var view = String.UnicodeScalarView()
        for scalar in scalars[start..<min(start + 6, scalars.count)] where !Self.isLineBreak(scalar) {
            view.append(scalar)
        }
        return String(view)
    }

    // MARK: Reading

    private var current: Unicode.Scalar? {
        index < scalars.count ? scalars[index] : nil
    }

    private static func isKeyTerminator(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "=" || scalar == ":" || isBlank(scalar)
    }

    private static func isBlank(_ scalar: Unicode.Scalar) -> Bool {
        scalar == " " || scalar == "\t" || scalar == "\u{0C}"
    }

    private static func isLineBreak(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "\n" || scalar == "\r"
    }

    private mutating func skipBlanks() {
        while let scalar = current, Self.isBlank(scalar) {
            index += 1
        }
    }

    private mutating func skipLineBreak() {
        if current == "\r" {
            index += 1
        }
        if current == "\n" {
            index += 1
        }
    }

    private mutating func skipToLineEnd() {
        while let scalar = current, !Self.isLineBreak(scalar) {
            index += 1
        }
    }

    private func position(_ offset: Int) -> SourcePosition {
        SourcePosition(scalarOffset: offset, in: scalars)
    }
}
