import CapstanCore
import Crypto
import Foundation

/// A stored config version: a one-line JSON header, a newline, then the raw content.
///
/// Keeping the content raw after the header avoids escaping megabytes of text into JSON on
/// every write and read.
struct ConfigRecord: Sendable {
    struct Header: Codable, Sendable {
        /// Schema version of the record.
        var v: Int = 1
        var sequence: Int64
        var action: ConfigVersionInfo.Action
        var format: ConfigFormat
        var size: Int
        var sha256: String
        var author: String
        var comment: String
        var time: Date
    }

    var header: Header
    var content: Data

    init(sequence: Int64, action: ConfigVersionInfo.Action, format: ConfigFormat, content: Data, author: String, comment: String, time: Date) {
        self.header = Header(
            sequence: sequence, action: action, format: format, size: content.count,
            sha256: SHA256.hash(data: content).map { String(format: "%02x", $0) }.joined(),
            author: author, comment: comment, time: time)
        self.content = content
    }

    private init(header: Header, content: Data) {
        self.header = header
        self.content = content
    }

    func encoded() throws -> Data {
        var data = try RecordCoding.encoder.encode(header)
        data.append(0x0A)
        data.append(content)
        return data
    }

    static func decode(_ data: Data) throws -> ConfigRecord {
        guard let newline = data.firstIndex(of: 0x0A) else {
            throw CapstanError(.internal, "stored config record has no header")
        }
        let header = try RecordCoding.decoder.decode(Header.self, from: data[data.startIndex..<newline])
        return ConfigRecord(header: header, content: Data(data[(newline + 1)...]))
    }

    func info(key: String, revision: Int64) -> ConfigVersionInfo {
        ConfigVersionInfo(
            key: key, revision: revision, version: header.sequence, action: header.action,
            format: header.format, size: header.size, sha256: header.sha256,
            author: header.author, comment: header.comment, time: header.time)
    }
}
