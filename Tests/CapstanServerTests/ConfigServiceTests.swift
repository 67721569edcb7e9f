import CapstanCore
import CapstanServer
import CapstanStore
import CapstanTesting
import Foundation
import Testing

@Suite("Config service")
struct ConfigServiceTests {
    static func withService<T: Sendable>(
        engine: StoreEngine,
        retention: Int = 100,
        maxSize: Int = 1 << 20,
        _ body: @Sendable (ConfigService, any KeyValueStore) async throws -> T
    ) async throws -> T {
        try await engine.withStore { store in
            var configuration = ConfigServiceConfiguration()
            configuration.historyRetention = retention
            configuration.maxContentSize = maxSize
            let service = ConfigService(store: store, configuration: configuration)
            _ = try await service.createNamespace("prod", author: "test")
            return try await body(service, store)
        }
    }

    static func key(_ text: String) throws -> ConfigKey { try ConfigKey(text) }
    static func data(_ text: String) -> Data { Data(text.utf8) }

    @Test(arguments: StoreEngine.allCases)
    func putGetListAndHistory(engine: StoreEngine) async throws {
        try await Self.withService(engine: engine) { service, _ in
            let key = try Self.key("prod/app/db.yaml")
            let first = try await service.put(key, content: Self.data("port: 1\n"), comment: "first", author: "ann")
            let second = try await service.put(key, content: Self.data("port: 2\n"), author: "bob")
            #expect(first.version == 1)
            #expect(second.version == 2)
            #expect(second.format == .yaml)
            let current = try await service.get(key)
            #expect(String(decoding: current.content, as: UTF8.self) == "port: 2\n")
            #expect(current.info.revision == second.revision)
            let old = try await service.get(key, revision: first.revision)
            #expect(String(decoding: old.content, as: UTF8.self) == "port: 1\n")
            let history = try await service.history(key)
            #expect(history.items.map(\.version) == [2, 1])
            #expect(history.items.map(\.author) == ["bob", "ann"])
            #expect(history.items.last?.comment == "first")
            try await service.put(try Self.key("prod/other.json"), content: Self.data("{}"), author: "x")
            #expect(try await service.list(try KeyPrefix("prod/app/")).items.map(\.key) == ["prod/app/db.yaml"])
            #expect(try await service.list(try KeyPrefix("prod")).items.count == 2)
        }
    }

    /// Two services on one store behave like two server replicas: each one's remembered state goes
    /// stale when the other writes, and no write may then reuse a sequence or lose a version.
    @Test(arguments: StoreEngine.allCases)
    func writersWithStaleStateNeverCollide(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            var configuration = ConfigServiceConfiguration()
            configuration.historyRetention = 2
            let a = ConfigService(store: store, configuration: configuration)
            let b = ConfigService(store: store, configuration: configuration)
            _ = try await a.createNamespace("prod", author: "t")
            let key = try Self.key("prod/shared.txt")
            try await a.put(key, content: Self.data("a1"), author: "a")
            try await b.put(key, content: Self.data("b2"), author: "b")
            try await a.put(key, content: Self.data("a3"), author: "a")
            try await b.delete(key, author: "b")
            try await a.put(key, content: Self.data("a5"), author: "a")
            for index in 6...9 { try await b.put(key, content: Self.data("b\(index)"), author: "b") }
            try await b.delete(key, author: "b")
            // `c` never saw the key: it guesses "new", and the first history entry proves otherwise.
            let c = ConfigService(store: store, configuration: configuration)
            let recreated = try await c.put(key, content: Self.data("c11"), author: "c")
            #expect(recreated.version == 11)
            let history = try await a.history(key)
            #expect(history.items.map(\.version) == [11, 10, 1])
            #expect(String(decoding: try await a.get(key).content, as: UTF8.self) == "c11")
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func metadataWithControlCharactersRoundTrips(engine: StoreEngine) async throws {
        try await Self.withService(engine: engine) { service, _ in
            let key = try Self.key("prod/meta.txt")
            let comment = "tab\there\r\nnew line \\ backslash \\t literal, ünïcödé"
            let written = try await service.put(key, content: Self.data("x"), comment: comment, author: "a\tb\nc")
            let read = try await service.history(key).items[0]
            #expect(read.comment == comment)
            #expect(read.author == "a\tb\nc")
            #expect(read.sha256 == "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881")
            #expect(abs(read.time.timeIntervalSince(written.time)) < 0.002)
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func historyKeepsExactlyTheRetainedVersions(engine: StoreEngine) async throws {
        try await Self.withService(engine: engine, retention: 3) { service, _ in
            let key = try Self.key("prod/r.txt")
            var revisions: [Int64] = []
            for index in 1...8 {
                revisions.append(try await service.put(key, content: Self.data("v\(index)"), author: "t").revision)
            }
            let history = try await service.history(key)
            #expect(history.items.map(\.version) == [8, 7, 6, 1], "the newest three and the first")
            let kept = try await service.get(key, revision: revisions[5])
            #expect(String(decoding: kept.content, as: UTF8.self) == "v6")
            let first = try await service.get(key, revision: revisions[0])
            #expect(String(decoding: first.content, as: UTF8.self) == "v1")
            do {
                _ = try await service.get(key, revision: revisions[2])
                Issue.record("a pruned version was still readable")
            } catch let error as CapstanError {
                #expect(error.code == .revisionNotFound)
            }
            // Deleted and re-created, the key continues its sequence (entry 1 marks its history).
            try await service.delete(key, author: "t")
            let recreated = try await service.put(key, content: Self.data("again"), author: "t")
            #expect(recreated.version == 10)
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func versionsContinueAcrossDeleteAndRollbackRestores(engine: StoreEngine) async throws {
        try await Self.withService(engine: engine) { service, _ in
            let key = try Self.key("prod/feature.properties")
            let v1 = try await service.put(key, content: Self.data("a=1\n"), author: "t")
            try await service.put(key, content: Self.data("a=2\n"), author: "t")
            let deleted = try await service.delete(key, author: "t")
            #expect(deleted.action == .delete)
            #expect(deleted.version == 3)
            await #expect(throws: CapstanError.self) { _ = try await service.get(key) }
            let restored = try await service.rollback(key, to: v1.revision, author: "t")
            #expect(restored.version == 4)
            #expect(restored.comment == "rollback to revision \(v1.revision)")
            #expect(String(decoding: try await service.get(key).content, as: UTF8.self) == "a=1\n")
            try await service.put(key, content: Self.data("a=5\n"), author: "t")
            let previous = try await service.rollback(key, author: "t")
            #expect(previous.version == 6)
            #expect(String(decoding: try await service.get(key).content, as: UTF8.self) == "a=1\n")
            let diff = try await service.diff(key, from: v1.revision)
            #expect(diff.isEmpty)
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func diffShowsTheChangedLines(engine: StoreEngine) async throws {
        try await Self.withService(engine: engine) { service, _ in
            let key = try Self.key("prod/d.yaml")
            let a = try await service.put(key, content: Self.data("a: 1\nb: 2\n"), author: "t")
            let b = try await service.put(key, content: Self.data("a: 1\nb: 3\n"), author: "t")
            let diff = try await service.diff(key, from: a.revision, to: b.revision)
            #expect(diff.contains("-b: 2\n+b: 3\n"))
            #expect(diff.hasPrefix("--- prod/d.yaml@\(a.revision)\n+++ prod/d.yaml@\(b.revision)\n"))
            do {
                _ = try await service.diff(key, from: b.revision + 100)
                Issue.record("diff at a future revision succeeded")
            } catch let error as CapstanError {
                #expect(error.code == .futureRevision)
            }
        }
    }

    @Test(
        arguments: [
            ("prod/bad.yaml", "a: [1, 2\nb: 3\n", 2),
            ("prod/bad.json", "{\"a\": 1,}", 1),
            ("prod/bad.toml", "a = 1\nb = [1,\nc=", 3),
            ("prod/bad.properties", "a=\\u12G4", 1),
        ])
    func malformedContentIsRefusedAndChangesNothing(key: String, content: String, line: Int) async throws {
        // Refused before the store is written: one engine is enough.
        try await Self.withService(engine: .sqlite) { service, store in
            let configKey = try Self.key(key)
            let good = configKey.fileExtension == "json" ? "{}" : ""
            try await service.put(configKey, content: Self.data(good), author: "t")
            let before = try await store.status().revision
            do {
                try await service.put(configKey, content: Self.data(content), author: "t")
                Issue.record("malformed \(key) was accepted")
            } catch let error as CapstanError {
                #expect(error.code == .invalidContent)
                #expect(error.line == line)
                #expect(error.column != nil)
            }
            #expect(try await store.status().revision == before)
            #expect(String(decoding: try await service.get(configKey).content, as: UTF8.self) == good)
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func formatOverrideAndInvalidEncoding(engine: StoreEngine) async throws {
        try await Self.withService(engine: engine) { service, _ in
            let key = try Self.key("prod/settings")
            let info = try await service.put(key, content: Self.data("{\"a\": 1}"), format: .json, author: "t")
            #expect(info.format == .json)
            await #expect(throws: CapstanError.self) {
                try await service.put(key, content: Self.data("{nope"), format: .json, author: "t")
            }
            do {
                try await service.put(key, content: Data([0xFF, 0xFE]), author: "t")
                Issue.record("invalid UTF-8 accepted")
            } catch let error as CapstanError {
                #expect(error.code == .invalidEncoding)
            }
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func oversizedContentIsRefused(engine: StoreEngine) async throws {
        try await Self.withService(engine: engine, maxSize: 16) { service, store in
            let before = try await store.status().revision
            do {
                try await service.put(try Self.key("prod/big.txt"), content: Data(repeating: 65, count: 17), author: "t")
                Issue.record("oversized content accepted")
            } catch let error as CapstanError {
                #expect(error.code == .payloadTooLarge)
            }
            #expect(try await store.status().revision == before)
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func unknownNamespaceIsRefused(engine: StoreEngine) async throws {
        try await Self.withService(engine: engine) { service, store in
            let before = try await store.status().revision
            for action in ["put", "get", "history"] {
                do {
                    let key = try Self.key("staging/app.yaml")
                    switch action {
                    case "put": try await service.put(key, content: Self.data("a: 1"), author: "t")
                    case "get": _ = try await service.get(key)
                    default: _ = try await service.history(key)
                    }
                    Issue.record("\(action) in an unknown namespace succeeded")
                } catch let error as CapstanError {
                    #expect(error.code == .namespaceNotFound, "\(action)")
                }
            }
            #expect(try await store.status().revision == before)
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func conditionalWritesCompareTheRevision(engine: StoreEngine) async throws {
        try await Self.withService(engine: engine) { service, _ in
            let key = try Self.key("prod/cas.txt")
            let created = try await service.put(key, content: Self.data("1"), author: "t", ifRevision: 0)
            do {
                try await service.put(key, content: Self.data("2"), author: "t", ifRevision: 0)
                Issue.record("create-only write overwrote an existing key")
            } catch let error as CapstanError {
                #expect(error.code == .preconditionFailed)
            }
            await #expect(throws: CapstanError.self) {
                try await service.put(key, content: Self.data("2"), author: "t", ifRevision: created.revision - 1)
            }
            let updated = try await service.put(key, content: Self.data("2"), author: "t", ifRevision: created.revision)
            #expect(updated.version == 2)
            await #expect(throws: CapstanError.self) {
                try await service.delete(key, author: "t", ifRevision: created.revision)
            }
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func concurrentWritersToOneKeyAllLand(engine: StoreEngine) async throws {
        try await Self.withService(engine: engine) { service, _ in
            let key = try Self.key("prod/hot.txt")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<6 {
                    group.addTask {
                        for index in 0..<5 {
                            try await service.put(key, content: Self.data("\(writer)-\(index)"), author: "w\(writer)")
                        }
                    }
                }
                try await group.waitForAll()
            }
            let history = try await service.history(key)
            #expect(history.items.map(\.version) == Array((1...30).reversed()))
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func namespaceLifecycle(engine: StoreEngine) async throws {
        try await Self.withService(engine: engine) { service, _ in
            await #expect(throws: CapstanError.self) { _ = try await service.createNamespace("prod", author: "t") }
            await #expect(throws: CapstanError.self) { _ = try await service.createNamespace("Bad_Name", author: "t") }
            let key = try Self.key("prod/a.txt")
            try await service.put(key, content: Self.data("x"), author: "t")
            do {
                try await service.deleteNamespace("prod")
                Issue.record("a namespace with keys was deleted")
            } catch let error as CapstanError {
                #expect(error.code == .namespaceNotEmpty)
            }
            // The refused delete leaves the namespace writable.
            try await service.put(key, content: Self.data("y"), author: "t")
            #expect(try await service.namespace("prod").configCount == 1)
            try await service.delete(key, author: "t")
            try await service.deleteNamespace("prod")
            #expect(try await service.listNamespaces().items.isEmpty)
            await #expect(throws: CapstanError.self) { try await service.deleteNamespace("prod") }
            _ = try await service.createNamespace("prod", author: "t")
            await #expect(throws: CapstanError.self) { _ = try await service.history(key) }
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func longPollReturnsOnChange(engine: StoreEngine) async throws {
        try await Self.withService(engine: engine) { service, store in
            let key = try Self.key("prod/poll.txt")
            let first = try await service.put(key, content: Self.data("1"), author: "t")
            // Already changed after the index: answers at once.
            try await withTimeout(.seconds(5)) {
                try await service.waitForChange(key, after: first.revision - 1, timeout: .seconds(60))
            }
            // The wait resumes from the index, so a change made before it subscribes still counts.
            let waiter = Task { try await service.waitForChange(key, after: first.revision, timeout: .seconds(60)) }
            try await service.put(try Self.key("prod/unrelated.txt"), content: Self.data("x"), author: "t")
            try await service.put(key, content: Self.data("2"), author: "t")
            // Generous: the whole suite runs side by side on two cores.
            try await withTimeout(.seconds(20), "long poll to return") { try await waiter.value }
            let started = ContinuousClock.now
            try await service.waitForChange(key, after: try await store.status().revision, timeout: .milliseconds(200))
            #expect(ContinuousClock.now - started >= .milliseconds(200))
        }
    }
}
