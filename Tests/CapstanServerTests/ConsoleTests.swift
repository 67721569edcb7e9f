import CapstanCore
import CapstanStore
import CapstanTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import CapstanServer

/// The console's sessions and pages in process, beside the browser tests (Tests/browser).
@Suite("Console")
struct ConsoleTests {
    /// A logged-in client: the router, the session cookie and its CSRF token.
    struct Session: Sendable {
        let client: any TestClientProtocol
        let cookie: String

        func get(_ path: String) async throws -> TestResponse {
            try await client.execute(uri: path, method: .get, headers: [.cookie: "capstan_session=\(cookie)"])
        }
    }

    static func withRouter(_ body: @escaping @Sendable (any TestClientProtocol, AccessControl) async throws -> Void) async throws {
        try await StoreEngine.sqlite.withStore { store in
            _ = try await AccessControl.bootstrap(store: store, given: TestAuth.rootToken)
            let access = AccessControl(store: store)
            let router = CapstanServer.makeRouter(service: ConfigService(store: store), access: access, store: store, metrics: ServerMetrics())
            try await Application(router: router).test(.router) { client in try await body(client, access) }
        }
    }

    /// Logs in through the form as a browser does: the form's CSRF value from its cookie.
    static func login(_ client: any TestClientProtocol, token: String) async throws -> String {
        let form = try await client.execute(uri: "/ui/login", method: .get)
        let csrf = try #require(cookie("capstan_login", in: form))
        let body = "token=\(token.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)&csrf=\(csrf)"
        let answer = try await client.execute(
            uri: "/ui/login", method: .post,
            headers: [.cookie: "capstan_login=\(csrf)", .contentType: "application/x-www-form-urlencoded"], body: ByteBuffer(string: body))
        #expect(answer.status == .seeOther, "\(String(buffer: answer.body))")
        return try #require(cookie("capstan_session", in: answer))
    }

    static func cookie(_ name: String, in response: TestResponse) -> String? {
        for value in response.headers[values: .setCookie] where value.hasPrefix(name + "=") {
            let cookie = value.dropFirst(name.count + 1).prefix { $0 != ";" }
            if !cookie.isEmpty { return String(cookie) }
        }
        return nil
    }

    @Test func aSessionEndsWhenItsTokenIsRevoked() async throws {
        try await Self.withRouter { client, access in
            let root = try await access.authenticate(TestAuth.rootToken)
            let created = try await access.createToken(TokenSpec(role: "viewer", description: "browser"), by: root)
            let session = Session(client: client, cookie: try await Self.login(client, token: created.token))
            #expect(try await session.get("/ui/").status == .ok)
            try await access.revoke(created.info.id, by: root)
            let after = try await session.get("/ui/")
            #expect(after.status == .seeOther)
            #expect(after.headers[.location] == "/ui/login")
        }
    }

    @Test func anUnknownOrForgedSessionCookieIsSentToTheLoginPage() async throws {
        try await Self.withRouter { client, _ in
            for cookie in ["nope", String(repeating: "x", count: 4096), ""] {
                let answer = try await Session(client: client, cookie: cookie).get("/ui/configs")
                #expect(answer.status == .seeOther)
                #expect(answer.headers[.location] == "/ui/login")
            }
            // An API route never takes the console's cookie instead of a token.
            let cookie = try await Self.login(client, token: TestAuth.rootToken)
            let api = try await client.execute(uri: "/v1/namespaces", method: .get, headers: [.cookie: "capstan_session=\(cookie)"])
            #expect(api.status == .unauthorized)
        }
    }

    @Test func aMissingKeyOrAForbiddenPageIsAPageWithItsStatus() async throws {
        try await Self.withRouter { client, _ in
            let session = Session(client: client, cookie: try await Self.login(client, token: TestAuth.rootToken))
            let missing = try await session.get("/ui/configs/nope/app.yaml")
            #expect(missing.status == .notFound)
            #expect(missing.headers[.contentType]?.hasPrefix("text/html") == true)
            #expect(String(buffer: missing.body).contains("namespace"))
        }
    }

    /// Over TLS the cookies carry `Secure`; over plain HTTP (a trusted network, `--dev`) they cannot.
    @Test func cookiesAreSecureWhenTheServerSpeaksTLS() async throws {
        for tls in [false, true] {
            try await StoreEngine.sqlite.withStore { store in
                _ = try await AccessControl.bootstrap(store: store, given: TestAuth.rootToken)
                let router = CapstanServer.makeRouter(
                    service: ConfigService(store: store), access: AccessControl(store: store), store: store, metrics: ServerMetrics(),
                    tlsAnchor: tls ? "-----BEGIN CERTIFICATE-----" : nil)
                try await Application(router: router).test(.router) { client in
                    let form = try await client.execute(uri: "/ui/login", method: .get)
                    let cookie = try #require(form.headers[values: .setCookie].first { $0.hasPrefix("capstan_login=") })
                    #expect(cookie.contains("Secure") == tls, "\(cookie)")
                    #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))
                    let session = try await Self.login(client, token: TestAuth.rootToken)
                    #expect(!session.isEmpty)
                }
            }
        }
    }

    @Test func theEventStreamRefusesTopicsItDoesNotKnow() async throws {
        try await Self.withRouter { client, _ in
            let session = Session(client: client, cookie: try await Self.login(client, token: TestAuth.rootToken))
            for query in ["topics=bogus", "topics=", "topics=nodes,bogus", ""] {
                let answer = try await session.get("/ui/events?\(query)")
                #expect(answer.status == .badRequest, "\(query)")
                #expect(String(buffer: answer.body).contains("topics"))
            }
        }
    }

    /// 10,000 nodes: the list pages by 100, unhealthy first, and every page links the next.
    @Test(.timeLimit(.minutes(2))) func tenThousandNodesArePaged() async throws {
        try await StoreEngine.sqlite.withStore { store in
            _ = try await AccessControl.bootstrap(store: store, given: TestAuth.rootToken)
            let registry = NodeRegistry(store: store, heartbeatInterval: .seconds(5), joinToken: "console-join-token-0123", logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<50 {
                    group.addTask {
                        for index in stride(from: lane, to: 10_000, by: 50) {
                            _ = try await registry.enroll(
                                EnrollRequest(
                                    joinToken: "console-join-token-0123", name: String(format: "n%05d", index), labels: ["rack": "r\(index % 10)"],
                                    facts: NodeFacts(
                                        hostname: "h", os: "linux", kernel: "6", arch: "x86_64", cpuCount: 1, memoryBytes: 1, addresses: [],
                                        agentVersion: "t", bootTime: nil)))
                        }
                    }
                }
                try await group.waitForAll()
            }
            let router = CapstanServer.makeRouter(
                service: ConfigService(store: store), registry: registry, access: AccessControl(store: store), store: store, metrics: ServerMetrics())
            try await Application(router: router).test(.router) { client in
                let session = Session(client: client, cookie: try await Self.login(client, token: TestAuth.rootToken))
                let first = String(buffer: try await session.get("/ui/nodes").body)
                #expect(first.contains("10000 nodes"))
                #expect(first.contains("page 1 of 100"))
                #expect(first.components(separatedBy: "<tr class=\"unhealthy\">").count - 1 == 100)
                #expect(first.contains("/ui/nodes?page=2"))
                let last = String(buffer: try await session.get("/ui/nodes?selector=rack%3Dr3&page=10").body)
                #expect(last.contains("1000 nodes"))
                #expect(last.contains(">n09993<"))
                #expect(!last.contains("rel=\"next\""))
            }
        }
    }

    /// Values are escaped by the templates, never inserted raw; no page runs inline script.
    @Test func theTemplatesEscapeEverythingAndCarryNoInlineScriptOrStyle() throws {
        let directory = try #require(BundledResource.url("console"))
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".mustache") }
        #expect(names.count >= 5)
        for name in names {
            let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            #expect(!text.contains("{{{") && !text.contains("{{&"), "\(name) inserts a value unescaped")
            #expect(!text.contains("style="), "\(name) has an inline style")
            #expect(!text.contains("<script>") && !text.contains("on" + "click="), "\(name) has inline script")
        }
    }
}
