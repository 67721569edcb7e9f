import CapstanServer
import CapstanTesting
import Foundation
import Testing

/// Requests the HTTP decoder refuses, on a real socket: each is answered with the status that
/// fits and its connection closed at once, not held until a timeout (there is none for them).
@Suite("Malformed requests")
struct MalformedRequestTests {
    struct Case: Sendable, CustomStringConvertible {
        var description: String
        var request: String
        var status: Int
    }

    static let cases: [Case] = [
        Case(description: "a bad method token", request: "GE@T /healthz HTTP/1.1\r\nHost: x\r\n\r\n", status: 400),
        Case(description: "a header without a colon", request: "GET /healthz HTTP/1.1\r\nHost x\r\n\r\n", status: 400),
        Case(description: "HTTP/9.9", request: "GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", status: 505),
        Case(
            description: "a negative Content-Length", request: "POST /v1/namespaces HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
            status: 400),
        Case(
            description: "both Content-Length and Transfer-Encoding",
            request: "POST /v1/namespaces HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            status: 400),
        Case(description: "a NUL in the URL", request: "GET /heal\0thz HTTP/1.1\r\nHost: x\r\n\r\n", status: 400),
        Case(description: "a NUL in a header", request: "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", status: 400),
        Case(
            description: "a header over the limit",
            request: "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 17 * 1024))\r\n\r\n", status: 431),
        Case(
            description: "a URL over the limit", request: "GET /\(String(repeating: "a", count: 17 * 1024)) HTTP/1.1\r\nHost: x\r\n\r\n",
            status: 431),
        Case(
            description: "101 headers",
            request: "GET /healthz HTTP/1.1\r\n" + (0...100).map { "X-H\($0): 1\r\n" }.joined() + "\r\n", status: 431),
    ]

    /// Head and idle timeouts far away: only the answer can end these connections in time.
    static var configuration: ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.requestHeadTimeout = .seconds(60)
        configuration.idleTimeout = .seconds(60)
        return configuration
    }

    @Test(arguments: cases)
    func isAnsweredAndClosedAtOnce(_ malformed: Case) async throws {
        try await LiveServer.with(configuration: Self.configuration) { server in
            let port = try #require(URLComponents(string: server.url)?.port)
            let (answer, elapsed) = try await onThread { () throws -> (String, Duration) in
                let connection = try RawConnection(port: port, timeoutSeconds: 5)
                defer { connection.close() }
                let started = ContinuousClock.now
                try? connection.send(malformed.request)
                let answer = (try? connection.receiveUntilClosed()) ?? "no answer, and the connection was held open"
                return (answer, ContinuousClock.now - started)
            }
            #expect(answer.hasPrefix("HTTP/1.1 \(malformed.status) "), "\(malformed): \(answer)")
            #expect(answer.contains("Connection: close") || answer.contains("connection: close"), "\(answer)")
            #expect(answer.contains("\"code\":\"invalid_argument\""), "\(answer)")
            #expect(elapsed < .seconds(3), "\(malformed) took \(elapsed)")
        }
    }

    /// The limits the 431 names are the decoder's own.
    @Test func theTooLargeAnswerNamesTheLimits() async throws {
        try await LiveServer.with(configuration: Self.configuration) { server in
            let port = try #require(URLComponents(string: server.url)?.port)
            let answer = try await onThread {
                let connection = try RawConnection(port: port, timeoutSeconds: 5)
                defer { connection.close() }
                try? connection.send(Self.cases.first { $0.status == 431 }!.request)
                return try connection.receiveUntilClosed()
            }
            #expect(answer.contains("16 KiB for the URL or a header, 64 KiB in all, 100 headers"), "\(answer)")
        }
    }

    /// A malformed request after a good one on a kept-alive connection is refused the same way.
    @Test func aMalformedLaterRequestIsAnsweredAndClosed() async throws {
        try await LiveServer.with(configuration: Self.configuration) { server in
            let port = try #require(URLComponents(string: server.url)?.port)
            let (first, second) = try await onThread { () throws -> (String, String) in
                let connection = try RawConnection(port: port)
                defer { connection.close() }
                try connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                let first = try connection.receiveResponse()
                try connection.send("GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n")
                return (first, (try? connection.receiveUntilClosed()) ?? "held open")
            }
            #expect(first.hasPrefix("HTTP/1.1 200"), "\(first)")
            #expect(second.hasPrefix("HTTP/1.1 505"), "\(second)")
        }
    }

    /// A body dripped a byte every 2 s is cut off at the body timeout with 408, and writes nothing.
    @Test func aDrippedBodyIsCutOffAtTheBodyTimeout() async throws {
        var configuration = Self.configuration
        configuration.requestBodyTimeout = .seconds(1)
        try await LiveServer.with(configuration: configuration) { server in
            let port = try #require(URLComponents(string: server.url)?.port)
            let token = server.token
            let (answer, elapsed) = try await onThread { () throws -> (String, Duration) in
                let connection = try RawConnection(port: port, timeoutSeconds: 5)
                defer { connection.close() }
                let body = "{\"name\":\"prod\"}"
                try connection.send(
                    "POST /v1/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: \(body.utf8.count)\r\n\r\n")
                let started = ContinuousClock.now
                for byte in body {
                    guard (try? connection.send(String(byte))) != nil, !connection.readable(withinMilliseconds: 2000) else { break }
                }
                return ((try? connection.receiveUntilClosed()) ?? "held open", ContinuousClock.now - started)
            }
            #expect(answer.hasPrefix("HTTP/1.1 408"), "\(answer)")
            #expect(answer.contains("--request-body-timeout"), "\(answer)")
            #expect(elapsed < .seconds(6), "\(elapsed)")
            #expect(try await server.store.get("/capstan/ns/prod") == nil)
        }
    }

    /// A config body the 408 cut off stores nothing: neither one whose last bytes arrive while the
    /// connection lingers to close, nor one whose client then leaves mid-body (raw YAML, which a
    /// prefix of would still parse). The stored config keeps its last version.
    @Test func aConfigBodyCutOffAtTheBodyTimeoutStoresNothing() async throws {
        var configuration = Self.configuration
        configuration.requestBodyTimeout = .seconds(1)
        try await LiveServer.with(configuration: configuration) { server in
            let port = try #require(URLComponents(string: server.url)?.port)
            let token = server.token
            let head = "PUT /v1/config/prod/app.yaml HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: 8\r\n\r\n"
            let answers = try await onThread { () throws -> [String] in
                let first = try RawConnection(port: port)
                defer { first.close() }
                try first.send("POST /v1/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: 16\r\n\r\n{\"name\":\"prod\"}\n")
                _ = try first.receiveResponse()
                try first.send(head + "port: 1\n")
                var answers = [try first.receiveResponse()]
                for finishes in [true, false] {
                    let connection = try RawConnection(port: port)
                    defer { connection.close() }
                    try connection.send(head + "port: ")
                    let refusal = try connection.receiveResponse()
                    if finishes {
                        // The rest, inside the second the connection lingers before it closes.
                        try? connection.send("2\n")
                        _ = try? connection.receiveUntilClosed()
                    }
                    answers.append(refusal)
                }
                return answers
            }
            #expect(answers[0].hasPrefix("HTTP/1.1 200"), "\(answers[0])")
            #expect(answers[1].hasPrefix("HTTP/1.1 408"), "\(answers[1])")
            #expect(answers[2].hasPrefix("HTTP/1.1 408"), "\(answers[2])")
            // Both cut-off requests end, audited by the server on its own time: as timed out.
            let log = AuditLog(store: server.store)
            try await eventually("audit entries for the three config writes") {
                try await log.list(resourcePrefix: "/v1/config/prod/app.yaml").filter { $0.method == "PUT" }.count == 3
            }
            let statuses = try await log.list(resourcePrefix: "/v1/config/prod/app.yaml").filter { $0.method == "PUT" }.map(\.status)
            #expect(statuses.sorted() == [200, 408, 408], "\(statuses)")
            let record = try #require(try await server.store.get("/capstan/config/prod/app.yaml"))
            #expect(String(decoding: record.value, as: UTF8.self).contains("port: 1"))
        }
    }
}
