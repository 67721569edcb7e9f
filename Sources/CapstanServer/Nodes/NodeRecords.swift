import CapstanCore
import CapstanStore
import Foundation

/// The stored node records (`/capstan/nodes/NAME`): read with their revision, written against
/// one, and updated with retries. Identity and liveness both change them, through this.
struct NodeRecords: Sendable {
    let store: any KeyValueStore

    func read(_ name: String) async throws -> (NodeRecord, Int64)? {
        guard let kv = try await store.get(StoreLayout.node(name)) else { return nil }
        return (try RecordCoding.decoder.decode(NodeRecord.self, from: kv.value), kv.modRevision)
    }

    /// Applies `change` to the stored record of `name`, retrying on a concurrent write.
    func update(_ name: String, _ change: @Sendable (inout NodeRecord) -> Void) async throws {
        _ = try await update(name, whileUnheld: false, change)
    }

    /// Applies `change` to the stored record of `name`, retrying on a concurrent write. With
    /// `whileUnheld`, only while no replica holds the node's presence: false when one does.
    func update(_ name: String, whileUnheld: Bool, _ change: @Sendable (inout NodeRecord) -> Void) async throws -> Bool {
        let presence = StoreLayout.presence(name)
        while true {
            guard let (record, revision) = try await read(name) else { throw Self.notFound(name) }
            var changed = record
            change(&changed)
            if changed == record { return true }
            if try await write(changed, expecting: revision, also: whileUnheld ? [.absent(presence)] : []) != nil { return true }
            if whileUnheld, try await store.get(presence) != nil { return false }
        }
    }

    /// Writes `record` if its key is still at `revision` (0: absent) and `conditions` hold; nil
    /// when they did not.
    func write(_ record: NodeRecord, expecting revision: Int64, also conditions: [Compare] = []) async throws -> Int64? {
        let key = StoreLayout.node(record.name)
        let result = try await store.txn(
            TxnRequest(
                compares: [Compare(key: key, .modRevision(revision))] + conditions,
                success: [.put(key: key, value: try RecordCoding.encoder.encode(record))]))
        return result.succeeded ? result.revision : nil
    }

    static func notFound(_ name: String) -> CapstanError {
        CapstanError(.nodeNotFound, "node \(name.quoted) not found")
    }
}
