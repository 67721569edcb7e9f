import CapstanCore
import Crypto
import Foundation

/// A stored config version: a one-line header, a newline, then the raw content.
///
/// The header is tab-separated (`capstan-config/1`, sequence, action, format, size, SHA-256,
/// time in milliseconds, author, comment; tabs, newlines and backslashes in the last two are
/// escaped). It is read on every GET and written on every PUT, so it is kept cheap to encode and
/// parse; the content stays raw so megabytes of text are never escaped.
struct ConfigRecord: Sendable {
    struct Header: Sendable {
        var sequence: Int64
        var action: ConfigVersionInfo.Action
        var format: ConfigFormat
        var size: Int
        var sha256: String
        var author: String
        var comment: String
        var time: Date
    }

    /// Schema tag of the header; a new layout gets a new number.
    static let schema = "capstan-config/1"

    var header: Header
    var content: Data

    init(sequence: Int64, action: ConfigVersionInfo.Action, format: ConfigFormat, content: Data, author: String, comment: String, time: Date) {
        self.header = Header(
            sequence: sequence, action: action, format: format, size: content.count,
            sha256: Self.hex(SHA256.hash(data: content)), author: author, comment: comment, time: time)
        self.content = content
    }

    private init(header: Header, content: Data) {
        self.header = header
        self.content = content
    }

    func encoded() throws -> Data {
        let millis = Int64((header.time.timeIntervalSince1970 * 1000).rounded())
        let fields = [
            Self.schema, String(header.sequence), header.action.rawValue, header.format.rawValue, String(header.size),
            header.sha256, String(millis), Self.escape(header.author), Self.escape(header.comment),
        ]
        var data = Data(fields.joined(separator: "\t").utf8)
        data.append(0x0A)
        data.append(content)
        return data
    }

    static func decode(_ data: Data) throws -> ConfigRecord {
        guard let newline = data.firstIndex(of: 0x0A) else {
            throw CapstanError(.internal, "stored config record has no header")
        }
        let fields = String(decoding: data[data.startIndex..<newline], as: UTF8.self)
            .split(separator: "\t", omittingEmptySubsequences: false)
        guard fields.count == 9, fields[0] == schema,
            let sequence = Int64(fields[1]),
            let action = ConfigVersionInfo.Action(rawValue: String(fields[2])),
            let format = ConfigFormat(rawValue: String(fields[3])),
            let size = Int(fields[4]),
            let millis = Int64(fields[6])
        else {
            throw CapstanError(.internal, "stored config record has a malformed header")
        }
        let header = Header(
            sequence: sequence, action: action, format: format, size: size, sha256: String(fields[5]),
            author: unescape(fields[7]), comment: unescape(fields[8]),
            time: Date(timeIntervalSince1970: Double(millis) / 1000))
        return ConfigRecord(header: header, content: Data(data[(newline + 1)...]))
    }

    static func hex(_ digest: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(64)
        for byte in digest {
            bytes.append(digits[Int(byte >> 4)])
            bytes.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    // By unicode scalar, not Character: "\r\n" is one Character and would slip through.
    static func escape(_ text: String) -> String {
        let special: Set<Unicode.Scalar> = ["\\", "\t", "\n", "\r"]
        guard text.unicodeScalars.contains(where: special.contains) else { return text }
        var escaped = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": escaped.append(contentsOf: "\\\\".unicodeScalars)
            case "\t": escaped.append(contentsOf: "\\t".unicodeScalars)
            case "\n": escaped.append(contentsOf: "\\n".unicodeScalars)
            case "\r": escaped.append(contentsOf: "\\r".unicodeScalars)
            default: escaped.append(scalar)
            }
        }
        return String(escaped)
    }

    static func unescape(_ text: Substring) -> String {
        guard text.unicodeScalars.contains("\\") else { return String(text) }
        var result = String.UnicodeScalarView()
        var escaping = false
        for scalar in text.unicodeScalars {
            if escaping {
                switch scalar {
                case "t": result.append("\t")
                case "n": result.append("\n")
                case "r": result.append("\r")
                default: result.append(scalar)
                }
                escaping = false
            } else if scalar == "\\" {
                escaping = true
            } else {
                result.append(scalar)
            }
        }
        return String(result)
    }

    func info(key: String, revision: Int64) -> ConfigVersionInfo {
        ConfigVersionInfo(
            key: key, revision: revision, version: header.sequence, action: header.action,
            format: header.format, size: header.size, sha256: header.sha256,
            author: header.author, comment: header.comment, time: header.time)
    }
}
