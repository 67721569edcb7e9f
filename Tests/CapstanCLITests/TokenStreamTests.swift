import CapstanClient
import CapstanCore
import CapstanTesting
import Foundation
import Testing

/// Requests held open on a token (a watch, a long poll, a job's event stream) end when the token
/// is revoked or expires, or its role changes, on a real server process, read byte by byte from a raw socket.
@Suite("Streams end with their token", .serialized, .timeLimit(.minutes(3)))
struct TokenStreamTests {
    static let joinToken = "test-join-token-0123456789"

    struct Fixture: Sendable {
        let server: ServerProcess
        let root: CapstanClient
        let port: Int
        let directory: TemporaryDirectory

        /// One request on a connection of its own, as the root token; answers the response.
        func send(_ method: String, _ path: String, body: String = "") throws -> String {
            let connection = try RawConnection(port: port, timeoutSeconds: 10)
            defer { connection.close() }
            try connection.send(
                "\(method) \(path) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(TestAuth.rootToken)\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
                    + body)
            return try connection.receive(until: "\r\n\r\n")
        }

        /// Waits until the server counts a request blocked in a long poll (its `/metrics` gauge).
        func awaitLongPoll(timeout: Duration = .seconds(10)) throws {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                let connection = try RawConnection(port: port, timeoutSeconds: 10)
                defer { connection.close() }
                try connection.send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                let waiting = try connection.receiveUntilClosed().split(separator: "\n")
                    .first { $0.hasPrefix("capstan_http_long_polls ") }
                    .flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
                if waiting > 0 { return }
                Thread.sleep(forTimeInterval: 0.02)
            }
            throw TimeoutError(what: "a long poll to be waiting", timeout: timeout)
        }

        /// Opens `path` as `token`, runs `meanwhile` once the response head (and `opening`) came,
        /// and answers what the stream sent up to its end; "held open" when it did not end.
        func held(_ path: String, token: String, opening: String? = nil, meanwhile: () throws -> Void) throws -> String {
            let connection = try RawConnection(port: port, timeoutSeconds: 8)
            defer { connection.close() }
            try connection.send("GET \(path) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\n\r\n")
            var text = ""
            if let opening {
                text += try connection.receive(until: opening)
            }
            try meanwhile()
            // A streamed body ends with its last chunk; a long poll's answer is whole with its head.
            do {
                text += try connection.receive(until: opening == nil ? "\r\n\r\n" : "\r\n0\r\n\r\n")
                if opening == nil { text += try connection.receive(until: "}") }
            } catch {
                return text + "\nheld open"
            }
            return text
        }
    }

    func withFixture<T: Sendable>(_ body: (Fixture) async throws -> T) async throws -> T {
        let directory = try TemporaryDirectory(prefix: "capstan-token-streams")
        defer { directory.remove() }
        return try await ServerProcess.with(
            dataDirectory: directory.file("data"), extraArguments: ["--join-token", Self.joinToken, "--heartbeat-interval", "200ms"]
        ) { server in
            let root = CapstanClient(server: server.url, author: "test", token: TestAuth.rootToken)
            _ = try await root.createNamespace("prod")
            let port = try #require(URLComponents(string: server.url)?.port)
            return try await body(Fixture(server: server, root: root, port: port, directory: directory))
        }
    }

    @Test func aWatchEndsWhenItsTokenIsRevokedAndDeliversNoLaterWrite() async throws {
        try await withFixture { fixture in
            let viewer = try await fixture.root.createToken(TokenSpec(role: "viewer"))
            let stream = try await onThread {
                try fixture.held("/v1/watch?prefix=prod/", token: viewer.token, opening: "from revision") {
                    _ = try fixture.send("DELETE", "/v1/tokens/\(viewer.info.id)")
                    _ = try fixture.send("PUT", "/v1/config/prod/app.yaml", body: "port: 1\n")
                }
            }
            #expect(stream.contains("event: error"), "\(stream)")
            #expect(stream.contains("was revoked"), "\(stream)")
            #expect(!stream.contains("app.yaml"), "\(stream)")
            #expect(!stream.contains("held open"), "\(stream)")
        }
    }

    /// Any change to the caller's role ends its streams (the client authorizes afresh by
    /// reconnecting): a watch whose role lost `read prod/` delivers no later write under prod/.
    @Test func aWatchEndsWhenItsRoleChangesAndDeliversNoLaterWrite() async throws {
        try await withFixture { fixture in
            _ = try await fixture.root.putRole("prod-reader", RoleSpec(rules: ["config:prod/:read"]))
            let reader = try await fixture.root.createToken(TokenSpec(role: "prod-reader"))
            let stream = try await onThread {
                try fixture.held("/v1/watch?prefix=prod/", token: reader.token, opening: "from revision") {
                    _ = try fixture.send("PUT", "/v1/roles/prod-reader", body: "{\"rules\":[\"config:staging/:read\"]}")
                    _ = try fixture.send("PUT", "/v1/config/prod/app.yaml", body: "port: 1\n")
                }
            }
            #expect(stream.contains("event: error"), "\(stream)")
            #expect(stream.contains("its role changed"), "\(stream)")
            #expect(!stream.contains("app.yaml"), "\(stream)")
            #expect(!stream.contains("held open"), "\(stream)")
        }
    }

    @Test func aWatchEndsWhenItsTokenExpires() async throws {
        try await withFixture { fixture in
            let brief = try await fixture.root.createToken(TokenSpec(role: "viewer", ttlSeconds: 2))
            let started = ContinuousClock.now
            let stream = try await onThread {
                try fixture.held("/v1/watch?prefix=prod/", token: brief.token, opening: "from revision") {}
            }
            #expect(stream.contains("event: error") && stream.contains("expired"), "\(stream)")
            #expect(ContinuousClock.now - started < .seconds(8))
        }
    }

    @Test func aLongPollEndsWith401WhenItsTokenIsRevokedOrExpires() async throws {
        try await withFixture { fixture in
            let written = try await fixture.root.put("prod/app.yaml", content: Data("port: 1\n".utf8))
            let viewer = try await fixture.root.createToken(TokenSpec(role: "viewer"))
            let path = "/v1/config/prod/app.yaml?index=\(written.revision)&wait=60s"
            let revoked = try await onThread {
                try fixture.held(path, token: viewer.token) {
                    // A revocation ends the poll once it waits.
                    try fixture.awaitLongPoll()
                    _ = try fixture.send("DELETE", "/v1/tokens/\(viewer.info.id)")
                }
            }
            #expect(revoked.hasPrefix("HTTP/1.1 401"), "\(revoked)")
            #expect(revoked.contains("was revoked"), "\(revoked)")
            let brief = try await fixture.root.createToken(TokenSpec(role: "viewer", ttlSeconds: 2))
            let listing = "/v1/configs?prefix=prod/&index=\(written.revision)&wait=60s"
            let expired = try await onThread { try fixture.held(listing, token: brief.token) {} }
            #expect(expired.hasPrefix("HTTP/1.1 401"), "\(expired)")
            #expect(expired.contains("expired"), "\(expired)")
        }
    }

    @Test func aJobEventStreamEndsWhenItsTokenIsRevoked() async throws {
        try await withFixture { fixture in
            let agent = try await AgentProcess.start(
                server: fixture.server.url, dataDirectory: fixture.directory.file("agent"), name: "web-1", joinToken: Self.joinToken)
            try await agent.stopping {
                let job = try await fixture.root.runJob(JobSpec(selector: "name=web-1", command: ["sleep", "30"], timeoutMilliseconds: 60_000))
                let viewer = try await fixture.root.createToken(TokenSpec(role: "viewer"))
                let stream = try await onThread {
                    try fixture.held("/v1/jobs/\(job.id)/events", token: viewer.token, opening: "\r\n\r\n") {
                        _ = try fixture.send("DELETE", "/v1/tokens/\(viewer.info.id)")
                    }
                }
                #expect(stream.contains("event: error") && stream.contains("was revoked"), "\(stream)")
                _ = try? await fixture.root.cancelJob(job.id)
            }
        }
    }
}
