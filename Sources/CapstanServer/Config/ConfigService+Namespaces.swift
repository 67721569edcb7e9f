import CapstanCore
import CapstanStore
import Foundation

extension ConfigService {
    public func createNamespace(_ name: String, description: String = "", author: String) async throws -> NamespaceInfo {
        try NamespaceName.validate(name)
        let record = NamespaceRecord(
            name: name, description: description, createdBy: author, createdAt: Date(), state: .active)
        let key = StoreLayout.namespace(name)
        let result = try await store.txn(
            TxnRequest(compares: [.absent(key)], success: [.put(key: key, value: try record.encoded())]))
        guard result.succeeded else {
            throw CapstanError(.namespaceExists, "namespace \(name) already exists")
        }
        return record.info(revision: result.revision, configCount: 0)
    }

    public func namespace(_ name: String) async throws -> NamespaceInfo {
        try NamespaceName.validate(name)
        guard let kv = try await store.get(StoreLayout.namespace(name)) else {
            throw CapstanError(.namespaceNotFound, "namespace \(name) not found")
        }
        let count = try await configCount(name)
        return try NamespaceRecord.decode(kv.value).info(revision: kv.modRevision, configCount: count)
    }

    public func listNamespaces() async throws -> NamespaceList {
        let result = try await store.range(RangeRequest(.prefix(StoreLayout.namespaces)))
        var items: [NamespaceInfo] = []
        for kv in result.kvs {
            let record = try NamespaceRecord.decode(kv.value)
            items.append(record.info(revision: kv.modRevision, configCount: try await configCount(record.name)))
        }
        return NamespaceList(items: items)
    }

    /// Deletes an empty namespace, and with it the history of keys deleted from it.
    ///
    /// Marks the namespace `deleting` first: config writes compare the namespace's revision, so
    /// none can land between the emptiness check and the delete.
    public func deleteNamespace(_ name: String) async throws {
        try NamespaceName.validate(name)
        let key = StoreLayout.namespace(name)
        guard let kv = try await store.get(key) else {
            throw CapstanError(.namespaceNotFound, "namespace \(name) not found")
        }
        var record = try NamespaceRecord.decode(kv.value)
        let previous = record
        record.state = .deleting
        let marked = try await store.txn(
            TxnRequest(
                compares: [Compare(key: key, .modRevision(kv.modRevision))],
                success: [.put(key: key, value: try record.encoded())]))
        guard marked.succeeded else {
            throw CapstanError(.conflict, "namespace \(name) changed while being deleted; try again")
        }
        let count: Int
        do {
            count = try await configCount(name)
        } catch {
            try? await restore(previous, key: key, markedAt: marked.revision)
            throw error
        }
        if count > 0 {
            try await restore(previous, key: key, markedAt: marked.revision)
            throw CapstanError(
                .namespaceNotEmpty,
                "namespace \(name) holds \(count) config key\(count == 1 ? "" : "s"); delete them first")
        }
        let deleted = try await store.txn(
            TxnRequest(
                compares: [Compare(key: key, .modRevision(marked.revision))],
                success: [.delete(.key(key)), .delete(.prefix(StoreLayout.historyNamespacePrefix(name)))]))
        guard deleted.succeeded else {
            throw CapstanError(.conflict, "namespace \(name) changed while being deleted; try again")
        }
    }

    /// Puts a namespace marked `deleting` back to `active`, unless someone changed it since.
    private func restore(_ record: NamespaceRecord, key: String, markedAt revision: Int64) async throws {
        var restored = record
        restored.state = .active
        _ = try await store.txn(
            TxnRequest(
                compares: [Compare(key: key, .modRevision(revision))],
                success: [.put(key: key, value: try restored.encoded())]))
    }

    func configCount(_ namespace: String) async throws -> Int {
        try await store.range(RangeRequest(.prefix(StoreLayout.configs + namespace + "/"), countOnly: true)).count
    }
}
