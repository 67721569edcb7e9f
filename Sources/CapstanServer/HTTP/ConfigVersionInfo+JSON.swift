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
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\u{8}": result += "\\b"
            case "\u{C}": result += "\\f"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }
}
