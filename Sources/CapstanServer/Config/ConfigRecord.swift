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
        /// A secret's data key (`StoreLayout.secretKey`); nil for plain content.
        var dataKeyID: String?
    }

    /// Schema tag of the header; a new layout gets a new number. Plain content keeps the first
    /// layout; a secret's record has a tenth field, its data key.
    static let schema = "capstan-config/1"
    static let secretSchema = "capstan-config/2"

    var header: Header
    var content: Data

    /// - Parameters:
    ///   - dataKeyID: for a secret, its data key; `content` is then the ciphertext.
    ///   - sha256: the content's SHA-256 in hex when the caller computed it already.
    init(
        sequence: Int64, action: ConfigVersionInfo.Action, format: ConfigFormat, content: Data, author: String, comment: String, time: Date,
        dataKeyID: String? = nil, sha256: String? = nil
    ) {
        self.header = Header(
            sequence: sequence, action: action, format: format, size: content.count,
            sha256: sha256 ?? Self.hex(SHA256.hash(data: content)), author: author, comment: comment, time: time, dataKeyID: dataKeyID)
        self.content = content
    }

    var isSecret: Bool { header.dataKeyID != nil }

    private init(header: Header, content: Data) {
        self.header = header
        self.content = content
    }

    func encoded() throws -> Data {
        let millis = Int64((header.time.timeIntervalSince1970 * 1000).rounded())
        var bytes: [UInt8] = []
        bytes.reserveCapacity(160 + header.author.utf8.count + header.comment.utf8.count)
        func field(_ text: String) {
            bytes += text.utf8
            bytes.append(0x09)
        }
        func number(_ value: Int64) {
            ASCIIDecimal.append(value, to: &bytes)
            bytes.append(0x09)
        }
        field(header.dataKeyID == nil ? Self.schema : Self.secretSchema)
        number(header.sequence)
        field(header.action.rawValue)
        field(header.format.rawValue)
        number(Int64(header.size))
        field(header.sha256)
        number(millis)
        field(Self.escape(header.author))
        field(Self.escape(header.comment))
        if let dataKeyID = header.dataKeyID { field(dataKeyID) }
        // The last field ends with the newline, not a tab.
        bytes[bytes.count - 1] = 0x0A
        var data = Data(capacity: bytes.count + content.count)
        data.append(contentsOf: bytes)
        data.append(content)
        return data
    }

    static func decode(_ data: Data) throws -> ConfigRecord {
        // Read on every GET: split the header on its bytes, making strings only of the fields
        // that are text.
        let header: Header? = data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) -> Header? in
            guard let newline = bytes.firstIndex(of: 0x0A) else { return nil }
            var fields: [Range<Int>] = []
            fields.reserveCapacity(10)
            var start = 0
            for index in 0..<newline where bytes[index] == 0x09 {
                fields.append(start..<index)
                start = index + 1
            }
            fields.append(start..<newline)
            guard fields.count == 9 || fields.count == 10 else { return nil }
            func text(_ field: Int) -> String { String(decoding: bytes[fields[field]], as: UTF8.self) }
            let schemaTag = text(0)
            guard (schemaTag == schema && fields.count == 9) || (schemaTag == secretSchema && fields.count == 10) else { return nil }
            func number(_ field: Int) -> Int64? {
                var value: Int64 = 0
                let range = fields[field]
                guard !range.isEmpty, range.count <= 18 else { return nil }
                for index in range {
                    let digit = bytes[index] &- 0x30
                    guard digit < 10 else { return nil }
                    value = value * 10 + Int64(digit)
                }
                return value
            }
            guard let sequence = number(1),
                let action = ConfigVersionInfo.Action(rawValue: text(2)),
                let format = ConfigFormat(rawValue: text(3)),
                let size = number(4), let millis = number(6)
            else { return nil }
            return Header(
                sequence: sequence, action: action, format: format, size: Int(size), sha256: text(5),
                author: unescape(text(7)[...]), comment: unescape(text(8)[...]),
                time: Date(timeIntervalSince1970: Double(millis) / 1000), dataKeyID: fields.count == 10 ? text(9) : nil)
        }
        guard let header, let newline = data.firstIndex(of: 0x0A) else {
            throw CapstanError(.internal, "stored config record has a malformed header")
        }
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
        // The special characters are ASCII, so a byte scan finds them (and most text has none).
        guard text.utf8.contains(where: { $0 == 0x5C || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) else { return text }
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
            author: header.author, comment: header.comment, time: header.time, secret: isSecret ? true : nil)
    }
}
