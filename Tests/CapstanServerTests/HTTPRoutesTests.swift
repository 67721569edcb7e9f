import CapstanCore
import CapstanServer
import CapstanStore
import CapstanTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import HTTPTypes
import Testing

@Suite("HTTP routes")
struct HTTPRoutesTests {
    static func withApp(
        engine: StoreEngine,
        maxSize: Int = 1 << 20,
        _ body: @escaping @Sendable (any TestClientProtocol, any KeyValueStore) async throws -> Void
    ) async throws {
        try await engine.withStore { store in
            var configuration = ConfigServiceConfiguration()
            configuration.maxContentSize = maxSize
            let service = ConfigService(store: store, configuration: configuration)
            _ = try await AccessControl.bootstrap(store: store, given: TestAuth.rootToken)
            let router = CapstanServer.makeRouter(service: service, store: store, metrics: ServerMetrics())
            let app = Application(router: router)
            try await app.test(.router) { client in
                let client = AuthorizedTestClient(client: client, token: TestAuth.rootToken)
                let created = try await client.execute(
                    uri: "/v1/namespaces", method: .post, body: ByteBuffer(string: #"{"name":"prod"}"#))
                #expect(created.status == .created)
                try await body(client, store)
            }
        }
    }

    /// Every key but the audit log's, with its revision: what a refused request must not change.
    static func state(_ store: any KeyValueStore) async throws -> [String: Int64] {
        let all = try await store.range(RangeRequest(.prefix("")))
        return Dictionary(
            uniqueKeysWithValues: all.kvs.filter { !$0.key.hasPrefix("/capstan/audit") }.map { ($0.key, $0.modRevision) })
    }

    static func problem(_ response: TestResponse) throws -> Problem {
        #expect(response.status.code >= 400)
        #expect(response.headers[.contentType] == "application/problem+json")
        return try JSONDecoder().decode(Problem.self, from: Data(buffer: response.body))
    }

    @Test(arguments: StoreEngine.allCases)
    func putThenGetAnswersRawContentWithETag(engine: StoreEngine) async throws {
        try await Self.withApp(engine: engine) { client, _ in
            let put = try await client.execute(
                uri: "/v1/config/prod/app/db.yaml?comment=first%20write", method: .put,
                headers: [HTTPField.Name("X-Capstan-Author")!: "ann"], body: ByteBuffer(string: "port: 5432\n"))
            #expect(put.status == .ok)
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            let info = try decoder.decode(ConfigVersionInfo.self, from: Data(buffer: put.body))
            #expect(info.key == "prod/app/db.yaml")
            #expect(info.author == "ann (token root)")
            #expect(info.comment == "first write")
            #expect(put.headers[.eTag] == "\"\(info.revision)\"")
            let get = try await client.execute(uri: "/v1/config/prod/app/db.yaml", method: .get)
            #expect(get.status == .ok)
            #expect(String(buffer: get.body) == "port: 5432\n")
            #expect(get.headers[.eTag] == "\"\(info.revision)\"")
            #expect(get.headers[.contentType] == "application/yaml; charset=utf-8")
            #expect(get.headers[HTTPField.Name("X-Capstan-Version")!] == "1")
            let cached = try await client.execute(
                uri: "/v1/config/prod/app/db.yaml", method: .get, headers: [.ifNoneMatch: "\"\(info.revision)\""])
            #expect(cached.status == .notModified)
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func conditionalWriteAnswers412AndChangesNothing(engine: StoreEngine) async throws {
        try await Self.withApp(engine: engine) { client, store in
            let first = try await client.execute(uri: "/v1/config/prod/a.txt", method: .put, body: ByteBuffer(string: "1"))
            let etag = try #require(first.headers[.eTag])
            let stale = try await client.execute(
                uri: "/v1/config/prod/a.txt", method: .put, headers: [.ifMatch: "\"1\""], body: ByteBuffer(string: "2"))
            #expect(stale.status == .preconditionFailed)
            #expect(try Self.problem(stale).code == "precondition_failed")
            let createOnly = try await client.execute(
                uri: "/v1/config/prod/a.txt", method: .put, headers: [.ifNoneMatch: "*"], body: ByteBuffer(string: "2"))
            #expect(createOnly.status == .preconditionFailed)
            let fresh = try await client.execute(
                uri: "/v1/config/prod/a.txt", method: .put, headers: [.ifMatch: etag], body: ByteBuffer(string: "3"))
            #expect(fresh.status == .ok)
            let bad = try await client.execute(
                uri: "/v1/config/prod/a.txt", method: .put, headers: [.ifMatch: "yesterday"], body: ByteBuffer(string: "4"))
            #expect(bad.status == .badRequest)
            #expect(String(buffer: try await client.execute(uri: "/v1/config/prod/a.txt", method: .get).body) == "3")
            _ = store
        }
    }

    @Test(
        arguments: [
            ("/v1/config/prod/bad.yaml", "a: [1\n", 400, "invalid_content"),
            ("/v1/config/prod/bad.json", "{\"a\" 1}", 400, "invalid_content"),
            ("/v1/config/prod/bad.toml", "x = = 1", 400, "invalid_content"),
            ("/v1/config/prod/x.yaml?format=xml", "a: 1", 400, "invalid_format"),
            ("/v1/config/prod/a//b.yaml", "a: 1", 400, "invalid_key"),
            ("/v1/config/prod/a/../b.yaml", "a: 1", 400, "invalid_key"),
            ("/v1/config/prod/a%20b.yaml", "a: 1", 400, "invalid_key"),
            ("/v1/config/Prod/a.yaml", "a: 1", 400, "invalid_namespace"),
            ("/v1/config/staging/a.yaml", "a: 1", 404, "namespace_not_found"),
        ])
    func badWritesAnswerAProblemAndChangeNothing(uri: String, body: String, status: Int, code: String) async throws {
        // Refused before the store is written: one engine is enough.
        try await Self.withApp(engine: .sqlite) { client, store in
            let before = try await Self.state(store)
            let response = try await client.execute(uri: uri, method: .put, body: ByteBuffer(string: body))
            #expect(Int(response.status.code) == status)
            let problem = try Self.problem(response)
            #expect(problem.code == code)
            #expect(problem.status == status)
            #expect(!problem.title.isEmpty)
            #expect(!problem.detail.isEmpty)
            if code == "invalid_content" {
                #expect(problem.line != nil)
                #expect(problem.column != nil)
            }
            #expect(try await Self.state(store) == before)
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func oversizedBodyAnswers413(engine: StoreEngine) async throws {
        try await Self.withApp(engine: engine, maxSize: 1024) { client, store in
            let before = try await Self.state(store)
            let response = try await client.execute(
                uri: "/v1/config/prod/big.txt", method: .put, body: ByteBuffer(repeating: 65, count: 4096))
            #expect(response.status == .contentTooLarge)
            let problem = try Self.problem(response)
            #expect(problem.code == "payload_too_large")
            #expect(problem.title == "Content Too Large")
            #expect(problem.detail.contains("1KiB"))
            #expect(try await Self.state(store) == before)
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func readErrorsAnswerProblems(engine: StoreEngine) async throws {
        try await Self.withApp(engine: engine) { client, _ in
            let missing = try await client.execute(uri: "/v1/config/prod/missing.yaml", method: .get)
            #expect(missing.status == .notFound)
            #expect(try Self.problem(missing).code == "config_not_found")
            #expect(try Self.problem(missing).title == "Not Found")
            let route = try await client.execute(uri: "/v1/nothing-here", method: .get)
            #expect(route.status == .notFound)
            #expect(try Self.problem(route).code == "not_found")
            let badRevision = try await client.execute(uri: "/v1/config/prod/a.txt?revision=abc", method: .get)
            #expect(badRevision.status == .badRequest)
            #expect(try Self.problem(badRevision).code == "invalid_argument")
            let badWait = try await client.execute(uri: "/v1/config/prod/a.txt?index=1&wait=forever", method: .get)
            #expect(try Self.problem(badWait).code == "invalid_argument")
            let badPrefix = try await client.execute(uri: "/v1/configs?prefix=prod/../x", method: .get)
            #expect(try Self.problem(badPrefix).code == "invalid_key")
            let hugeLimit = try await client.execute(uri: "/v1/configs?limit=9223372036854775807", method: .get)
            #expect(hugeLimit.status == .ok)
            let hugeEventID = try await client.execute(
                uri: "/v1/watch", method: .get, headers: [.lastEventID: "9223372036854775807"])
            #expect(try Self.problem(hugeEventID).code == "invalid_argument")
            let noFrom = try await client.execute(uri: "/v1/diff/prod/a.txt", method: .get)
            #expect(try Self.problem(noFrom).code == "invalid_argument")
            let badJSON = try await client.execute(uri: "/v1/namespaces", method: .post, body: ByteBuffer(string: "{"))
            #expect(badJSON.status == .badRequest)
            #expect(try Self.problem(badJSON).code == "invalid_argument")
            let exists = try await client.execute(
                uri: "/v1/namespaces", method: .post, body: ByteBuffer(string: #"{"name":"prod"}"#))
            #expect(exists.status == .conflict)
            #expect(try Self.problem(exists).code == "namespace_exists")
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func historyDiffRollbackAndDelete(engine: StoreEngine) async throws {
        try await Self.withApp(engine: engine) { client, _ in
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            var revisions: [Int64] = []
            for port in [1, 2] {
                let put = try await client.execute(
                    uri: "/v1/config/prod/app.yaml", method: .put, body: ByteBuffer(string: "port: \(port)\n"))
                revisions.append(try decoder.decode(ConfigVersionInfo.self, from: Data(buffer: put.body)).revision)
            }
            let history = try decoder.decode(
                ConfigHistory.self, from: Data(buffer: try await client.execute(uri: "/v1/history/prod/app.yaml", method: .get).body))
            #expect(history.items.map(\.revision) == revisions.reversed())
            let diff = try await client.execute(uri: "/v1/diff/prod/app.yaml?from=\(revisions[0])", method: .get)
            #expect(String(buffer: diff.body).contains("-port: 1\n+port: 2\n"))
            let rollback = try await client.execute(uri: "/v1/rollback/prod/app.yaml", method: .post)
            #expect(rollback.status == .ok)
            #expect(String(buffer: try await client.execute(uri: "/v1/config/prod/app.yaml", method: .get).body) == "port: 1\n")
            let list = try decoder.decode(
                ConfigList.self, from: Data(buffer: try await client.execute(uri: "/v1/configs?prefix=prod", method: .get).body))
            #expect(list.items.map(\.version) == [3])
            let deleted = try await client.execute(uri: "/v1/config/prod/app.yaml", method: .delete)
            #expect(deleted.status == .ok)
            let notEmpty = try await client.execute(uri: "/v1/namespaces/prod", method: .delete)
            #expect(notEmpty.status == .noContent)
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func healthReadinessAndOpenAPI(engine: StoreEngine) async throws {
        try await Self.withApp(engine: engine) { client, _ in
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/readyz", method: .get).status == .ok)
            let document = try await client.execute(uri: "/v1/openapi.yaml", method: .get)
            #expect(document.status == .ok)
            #expect(String(buffer: document.body).hasPrefix("openapi: 3.1"))
        }
    }
}

extension HTTPField.Name {
    static let lastEventID = Self("Last-Event-ID")!
}
