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

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        return encoder
    }()

    private static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return decoder
    }()

    func encoded() throws -> Data {
        var data = try Self.encoder.encode(header)
        data.append(0x0A)
        data.append(content)
        return data
    }

    static func decode(_ data: Data) throws -> ConfigRecord {
        guard let newline = data.firstIndex(of: 0x0A) else {
            throw CapstanError(.internal, "stored config record has no header")
        }
        let header = try decoder.decode(Header.self, from: data[data.startIndex..<newline])
        return ConfigRecord(header: header, content: Data(data[(newline + 1)...]))
    }

    func info(key: String, revision: Int64) -> ConfigVersionInfo {
        ConfigVersionInfo(
            key: key, revision: revision, version: header.sequence, action: header.action,
            format: header.format, size: header.size, sha256: header.sha256,
            author: header.author, comment: header.comment, time: header.time)
    }
}

/// A stored namespace record.
struct NamespaceRecord: Codable, Sendable {
    enum State: String, Codable, Sendable {
        case active
        /// Being deleted: config writes are refused while the emptiness check runs.
        case deleting
    }

    var v: Int = 1
    var name: String
    var description: String
    var createdBy: String
    var createdAt: Date
    var state: State

    func info(revision: Int64, configCount: Int? = nil) -> NamespaceInfo {
        NamespaceInfo(
            name: name, description: description, createdBy: createdBy, createdAt: createdAt,
            revision: revision, configCount: configCount)
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        return encoder
    }()

    private static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return decoder
    }()

    func encoded() throws -> Data { try Self.encoder.encode(self) }

    static func decode(_ data: Data) throws -> NamespaceRecord { try decoder.decode(NamespaceRecord.self, from: data) }
}
