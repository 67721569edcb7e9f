import CapstanCore
import Foundation

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

    func encoded() throws -> Data { try RecordCoding.encoder.encode(self) }

    static func decode(_ data: Data) throws -> NamespaceRecord { try RecordCoding.decoder.decode(NamespaceRecord.self, from: data) }
}
