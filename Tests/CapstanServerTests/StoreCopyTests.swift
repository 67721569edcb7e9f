import CapstanCore
import CapstanServer
import CapstanStore
import CapstanTesting
import Foundation
import Testing

/// `capstan store copy` at the library level: SQLite to etcd and back, with real stores.
@Suite("Store copy")
struct StoreCopyTests {
    /// A config's history as the service reports it, without the revision numbers (which the
    /// target assigns its own way).
    static func versions(_ service: ConfigService, _ key: String) async throws -> [String] {
        try await service.history(ConfigKey(key)).items.map {
            "v\($0.version) \($0.action.rawValue) \($0.author) \($0.comment) \($0.sha256) \($0.time.timeIntervalSince1970)"
        }
    }

    @Test(arguments: [(StoreEngine.sqlite, StoreEngine.etcd), (.etcd, .sqlite)])
    func copyKeepsEveryConfigItsHistoryAndItsOrder(from sourceEngine: StoreEngine, to targetEngine: StoreEngine) async throws {
        try await sourceEngine.withStore { source in
            let service = ConfigService(store: source)
            _ = try await service.createNamespace("prod", description: "production", author: "ann")
            let db = try ConfigKey("prod/db.yaml")
            let cache = try ConfigKey("prod/cache.json")
            let first = try await service.put(db, content: Data("port: 1\n".utf8), comment: "first", author: "ann")
            try await service.put(cache, content: Data(#"{"size": 1}"#.utf8), author: "bob")
            let second = try await service.put(db, content: Data("port: 2\n".utf8), author: "bob")
            try await service.delete(cache, author: "cy")
            // A leased key belongs to a live process: it stays behind.
            let lease = try await source.grantLease(ttl: 60)
            try await source.put("/capstan/locks/compaction", Data("someone".utf8), lease: lease.id)

            try await targetEngine.withStore { target in
                let report = try await StoreCopy.copy(from: source, to: target)
                #expect(report.skippedLeased == 1)
                #expect(report.keys == (try await StoreCopy.digest(of: target)).count)
                #expect(report.checksum == (try await StoreCopy.digest(of: source)).checksum)

                let copied = ConfigService(store: target)
                #expect(try await copied.listNamespaces().items.map(\.name) == ["prod"])
                #expect(try await Self.versions(copied, "prod/db.yaml") == (try await Self.versions(service, "prod/db.yaml")))
                #expect(try await Self.versions(copied, "prod/cache.json") == (try await Self.versions(service, "prod/cache.json")))
                #expect(String(decoding: try await copied.get(db).content, as: UTF8.self) == "port: 2\n")
                await #expect(throws: CapstanError.self) { try await copied.get(cache) }
                // Reading as of the first version's revision still finds the first version.
                let history = try await copied.history(db).items
                let old = try await copied.get(db, revision: try #require(history.last).revision)
                #expect(String(decoding: old.content, as: UTF8.self) == "port: 1\n")
                #expect(history.map(\.version) == [second.version, first.version])
                #expect(try await target.get("/capstan/locks/compaction") == nil)

                // A second copy into the now full target is refused and changes nothing.
                let before = try await target.status().revision
                await #expect(throws: CapstanError.self) { try await StoreCopy.copy(from: source, to: target) }
                #expect(try await target.status().revision == before)
            }
        }
    }

    @Test func theDigestSeesContentKeysAndOrderButNotRevisionNumbers() {
        func kv(_ key: String, _ value: String, _ revision: Int64) -> KeyValue {
            KeyValue(key: key, value: Data(value.utf8), createRevision: revision, modRevision: revision, version: 1)
        }
        let base = StoreCopy.digest([kv("a", "1", 5), kv("b", "2", 7)])
        #expect(base == StoreCopy.digest([kv("a", "1", 105), kv("b", "2", 900)]), "renumbered revisions changed the digest")
        #expect(base != StoreCopy.digest([kv("a", "1", 5), kv("b", "3", 7)]), "a changed value kept the digest")
        #expect(base != StoreCopy.digest([kv("a", "1", 7), kv("b", "2", 5)]), "a changed order kept the digest")
        #expect(base != StoreCopy.digest([kv("a", "1", 5), kv("c", "2", 7)]), "a changed key kept the digest")
        #expect(base != StoreCopy.digest([kv("a", "1", 5)]), "a missing key kept the digest")
    }
}
