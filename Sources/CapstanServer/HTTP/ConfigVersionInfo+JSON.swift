import CapstanCore
import Foundation

extension ConfigVersionInfo {
    /// The same JSON `JSONEncoder` (sorted keys, unescaped slashes, ISO 8601 dates) produces, written by hand
    /// in bytes: every write answers one of these, and the generic encoder was a visible share of a put.
    func encodedJSON() -> [UInt8] {
        var json: [UInt8] = []
        json.reserveCapacity(320 + key.utf8.count + author.utf8.count + comment.utf8.count)
        func field(_ name: String, quoting value: String) {
            json += name.utf8
            JSONText.appendQuoted(value, to: &json)
            json.append(UInt8(ascii: ","))
        }
        json += #"{"action":""#.utf8
        json += action.rawValue.utf8
        json += #"","#.utf8
        field(#""author":"#, quoting: author)
        field(#""comment":"#, quoting: comment)
        json += #""format":""#.utf8
        json += format.rawValue.utf8
        json += #"","#.utf8
        field(#""key":"#, quoting: key)
        json += #""revision":\#(revision),"#.utf8
        if let rollout { field(#""rollout":"#, quoting: rollout) }
        if secret == true { json += #""secret":true,"#.utf8 }
        json += #""sha256":""#.utf8
        json += sha256.utf8
        json += #"","size":\#(size),"time":""#.utf8
        Self.appendISO8601(time, to: &json)
        json += #"","version":\#(version)}"#.utf8
        return json
    }

    /// `yyyy-MM-dd'T'HH:mm:ss'Z'` in UTC.
    static func iso8601(_ date: Date) -> String {
        var bytes: [UInt8] = []
        appendISO8601(date, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    static func appendISO8601(_ date: Date, to bytes: inout [UInt8]) {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func digits(_ value: Int32, _ width: Int) {
            var divisor: Int32 = 1
            for _ in 1..<width { divisor *= 10 }
            var value = max(0, value)
            // A year past 9999 keeps all its digits.
            while value / divisor >= 10 { divisor *= 10 }
            while divisor > 0 {
                bytes.append(UInt8(ascii: "0") + UInt8(value / divisor))
                value %= divisor
                divisor /= 10
            }
        }
        digits(parts.tm_year + 1900, 4)
        bytes.append(UInt8(ascii: "-"))
        digits(parts.tm_mon + 1, 2)
        bytes.append(UInt8(ascii: "-"))
        digits(parts.tm_mday, 2)
        bytes.append(UInt8(ascii: "T"))
        digits(parts.tm_hour, 2)
        bytes.append(UInt8(ascii: ":"))
        digits(parts.tm_min, 2)
        bytes.append(UInt8(ascii: ":"))
        digits(parts.tm_sec, 2)
        bytes.append(UInt8(ascii: "Z"))
    }
}

/// JSON text written by hand, as `JSONEncoder` writes it: for the encoders on hot paths (a
/// config version answered on every write, an audit entry on every audited request).
enum JSONText {
    /// A JSON string, escaped as `JSONEncoder` escapes it (slashes left as they are).
    static func quoted(_ text: String) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count + 2)
        appendQuoted(text, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends `text` as a JSON string to `bytes`. Works on UTF-8 bytes: every byte to escape is
    /// ASCII, and the bytes of a multi-byte character never are, so they pass through as they are.
    static func appendQuoted(_ text: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            // Most text has nothing to escape: copied whole, not byte by byte.
            guard utf8.contains(where: needsEscape) else {
                bytes.append(contentsOf: utf8)
                return
            }
            for byte in utf8 { appendEscaped(byte, to: &bytes) }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private static func needsEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\")
    }

    private static func appendEscaped(_ byte: UInt8, to bytes: inout [UInt8]) {
        let hexDigits: StaticString = "0123456789abcdef"
        switch byte {
        case UInt8(ascii: "\""): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
        case UInt8(ascii: "\\"): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
        case 0x0A: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
        case 0x0D: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
        case 0x09: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
        case 0x08: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
        case 0x0C: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
        case 0..<0x20:
            bytes += [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")]
            hexDigits.withUTF8Buffer { digits in
                bytes.append(digits[Int(byte >> 4)])
                bytes.append(digits[Int(byte & 0x0F)])
            }
        default:
            bytes.append(byte)
        }
    }
}
