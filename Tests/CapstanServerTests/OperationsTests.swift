import CapstanCore
import CapstanServer
import CapstanStore
import CapstanTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("Operations endpoints")
struct OperationsTests {
    @Test(arguments: StoreEngine.allCases)
    func metricsPassPromtoolAndCountRequests(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let service = ConfigService(store: store)
            _ = try await AccessControl.bootstrap(store: store, given: TestAuth.rootToken)
            let router = CapstanServer.makeRouter(service: service, store: store, metrics: ServerMetrics())
            try await Application(router: router).test(.router) { client in
                let client = AuthorizedTestClient(client: client, token: TestAuth.rootToken)
                _ = try await client.execute(uri: "/v1/namespaces", method: .post, body: ByteBuffer(string: #"{"name":"ops"}"#))
                _ = try await client.execute(uri: "/v1/config/ops/a.txt", method: .put, body: ByteBuffer(string: "x"))
                _ = try await client.execute(uri: "/v1/config/ops/missing.txt", method: .get)
                // Two writes and their audit entries, after bootstrap.
                let revision = try await store.status().revision
                let response = try await client.execute(uri: "/metrics", method: .get)
                #expect(response.status == .ok)
                let text = String(buffer: response.body)
                #expect(text.contains(#"capstan_http_requests_total{method="PUT",route="/v1/config/{namespace}/**",status="200"} 1"#))
                #expect(text.contains(#"capstan_http_requests_total{method="GET",route="/v1/config/{namespace}/**",status="404"} 1"#))
                #expect(text.contains("capstan_http_request_duration_seconds_bucket"))
                #expect(text.contains("capstan_store_revision \(revision)"))
                #expect(text.contains("capstan_store_watches"))
                let (status, output) = try await Promtool.check(text)
                #expect(status == 0, "promtool check metrics: \(output)")
            }
        }
    }

    /// Every route the router serves is in the OpenAPI document, and every documented operation
    /// is served.
    @Test(arguments: StoreEngine.allCases)
    func openAPIDocumentCoversEveryRoute(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let router = CapstanServer.makeRouter(
                service: ConfigService(store: store), store: store, metrics: ServerMetrics())
            // The console's HTML pages (`/`, `/ui/...`) are for browsers: docs/console.md covers them.
            let served = Set(
                router.routes.filter { $0.path.description != "/" && !$0.path.description.hasPrefix("/ui") }.map { route in
                    "\(route.method.rawValue.lowercased()) \(route.path.description.replacingOccurrences(of: "/**", with: "/{path}"))"
                })
            let document = try #require(OpenAPIDocument.text, "the OpenAPI document is not bundled")
            let documented = Self.operations(inOpenAPI: document)
            // Valid YAML as a whole, as tools that load it (schemathesis, generators) need it.
            #expect(throws: Never.self) { _ = try ConfigFormat.yaml.parse(document) }
            #expect(!served.isEmpty)
            #expect(served.subtracting(documented).isEmpty, "routes missing from openapi.yaml: \(served.subtracting(documented).sorted())")
            #expect(documented.subtracting(served).isEmpty, "documented but not served: \(documented.subtracting(served).sorted())")
            let repoCopy = URL(fileURLWithPath: #filePath)
                .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("Sources/CapstanServer/Resources/openapi.yaml")
            #expect(try String(contentsOf: repoCopy, encoding: .utf8) == document, "served document differs from the repository's")
        }
    }

    /// "method /path" for each operation under `paths:` (two-space path keys, four-space methods).
    static func operations(inOpenAPI text: String) -> Set<String> {
        var operations = Set<String>()
        var inPaths = false
        var path: String?
        let methods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options"]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if !line.hasPrefix(" "), !line.isEmpty {
                inPaths = line.hasPrefix("paths:")
                continue
            }
            guard inPaths else { continue }
            if line.hasPrefix("  "), !line.hasPrefix("   "), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast()).trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
            } else if line.hasPrefix("    "), !line.hasPrefix("     "), let path {
                let name = line.trimmingCharacters(in: .whitespaces).dropLast()
                if line.hasSuffix(":"), methods.contains(String(name)) {
                    operations.insert("\(name) \(path)")
                }
            }
        }
        return operations
    }
}
