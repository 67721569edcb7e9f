import CapstanCore
import Foundation

extension ConfigVersionInfo {
    /// The same JSON `JSONEncoder` (sorted keys, unescaped slashes, ISO 8601 dates) produces, written by hand:
    /// every write answers one of these, and the generic encoder was a visible share of a put.
    func encodedJSON() -> String {
        var json = "{"
        json += "\"action\":\"\(action.rawValue)\","
        json += "\"author\":\(JSONText.quoted(author)),"
        json += "\"comment\":\(JSONText.quoted(comment)),"
        json += "\"format\":\"\(format.rawValue)\","
        json += "\"key\":\(JSONText.quoted(key)),"
        json += "\"revision\":\(revision),"
        if let rollout { json += "\"rollout\":\(JSONText.quoted(rollout))," }
        if secret == true { json += "\"secret\":true," }
        json += "\"sha256\":\"\(sha256)\","
        json += "\"size\":\(size),"
        json += "\"time\":\"\(Self.iso8601(time))\","
        json += "\"version\":\(version)"
        json += "}"
        return json
    }

    /// `yyyy-MM-dd'T'HH:mm:ss'Z'` in UTC.
    static func iso8601(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int = 2) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1))-\(pad(parts.tm_mday))T"
            + "\(pad(parts.tm_hour)):\(pad(parts.tm_min)):\(pad(parts.tm_sec))Z"
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
        let hexDigits: StaticString = "0123456789abcdef"
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
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
        bytes.append(UInt8(ascii: "\""))
    }
}
