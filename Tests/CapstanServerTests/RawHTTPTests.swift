import CapstanServer
import CapstanTesting
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// HTTP behaviour below what an HTTP client library shows: bytes on a real socket.
@Suite("Raw HTTP")
struct RawHTTPTests {
    /// curl sends `Expect: 100-continue` on uploads (`curl -T app.yaml`) and holds the body
    /// back for up to a second unless the server answers `100 Continue` first.
    @Test func expectContinueIsAnsweredBeforeTheBody() async throws {
        try await LiveServer.with { server in
            let port = try #require(URLComponents(string: server.url)?.port)
            // The socket blocks: it runs on a thread of its own, not on one the server needs.
            let (created, interim, final) = try await onThread {
                let connection = try RawConnection(port: port)
                defer { connection.close() }
                try connection.send("POST /v1/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(server.token)\r\nContent-Length: 16\r\n\r\n{\"name\":\"prod\"}\n")
                let created = try connection.receive(until: "\r\n\r\n")
                _ = try connection.receive(until: "}")
                let body = "port: 8080\n"
                try connection.send(
                    "PUT /v1/config/prod/app.yaml HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(server.token)\r\nContent-Length: \(body.utf8.count)\r\n"
                        + "Expect: 100-continue\r\n\r\n")
                // Nothing of the body is sent yet: the interim answer must come on its own.
                let interim = try connection.receive(until: "\r\n\r\n")
                try connection.send(body)
                return (created, interim, try connection.receive(until: "\r\n\r\n"))
            }
            #expect(created.hasPrefix("HTTP/1.1 201"))
            #expect(interim.hasPrefix("HTTP/1.1 100 Continue"))
            #expect(final.hasPrefix("HTTP/1.1 200"))
            #expect(try await server.store.get("/capstan/config/prod/app.yaml") != nil)
        }
    }
}

extension RawHTTPTests {
    /// A client that drips its first request head is cut off at the head timeout, whatever it
    /// keeps sending; a whole request on another connection is served meanwhile.
    @Test func aDrippedRequestHeadIsCutOff() async throws {
        var configuration = ServerConfiguration()
        configuration.requestHeadTimeout = .seconds(1)
        try await LiveServer.with(configuration: configuration) { server in
            let port = try #require(URLComponents(string: server.url)?.port)
            let (ended, elapsed, healthy) = try await onThread { () throws -> (Bool, Duration, String) in
                let slow = try RawConnection(port: port)
                defer { slow.close() }
                let started = ContinuousClock.now
                try slow.send("GET /healthz HTTP/1.1\r\n")
                let fast = try RawConnection(port: port)
                defer { fast.close() }
                try fast.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                let healthy = try fast.receive(until: "\r\n\r\n")
                // One header line every 300 ms: each resets no timer.
                var ended = false
                for index in 0..<40 {
                    do { try slow.send("X-Drip-\(index): 1\r\n") } catch { ended = true; break }
                    if slow.closedWithin(milliseconds: 300) { ended = true; break }
                }
                return (ended, ContinuousClock.now - started, healthy)
            }
            #expect(healthy.hasPrefix("HTTP/1.1 200"))
            #expect(ended, "the dripping connection was still open")
            #expect(elapsed < .seconds(10))
        }
    }

    /// Headers past the limits are refused without harm: answered 431, nothing is routed, and the
    /// server serves the next request.
    @Test func oversizedHeadersAreRefused() async throws {
        try await LiveServer.with { server in
            let port = try #require(URLComponents(string: server.url)?.port)
            let (answer, after) = try await onThread { () throws -> (String, String) in
                let big = try RawConnection(port: port, timeoutSeconds: 3)
                defer { big.close() }
                try? big.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 100_000))\r\n\r\n")
                let answer = (try? big.receive(until: "\r\n\r\n")) ?? "closed"
                let next = try RawConnection(port: port)
                defer { next.close() }
                try next.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                return (answer, try next.receive(until: "\r\n\r\n"))
            }
            #expect(answer.hasPrefix("HTTP/1.1 431"), "\(answer)")
            #expect(after.hasPrefix("HTTP/1.1 200"))
        }
    }
}

/// The heads of later requests on a kept-alive connection are bounded like the first one's.
extension RawHTTPTests {
    /// Once a request is answered, the first byte of the next starts the head clock: dripping the
    /// next head is cut off, while a connection that sends nothing is left to the idle timeout.
    @Test func aDrippedLaterRequestHeadIsCutOffAndAQuietConnectionIsNot() async throws {
        var configuration = ServerConfiguration()
        configuration.requestHeadTimeout = .seconds(1)
        try await LiveServer.with(configuration: configuration) { server in
            let port = try #require(URLComponents(string: server.url)?.port)
            let (ended, elapsed, quietAnswer) = try await onThread { () throws -> (Bool, Duration, String) in
                let quiet = try RawConnection(port: port)
                defer { quiet.close() }
                try quiet.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                _ = try quiet.receiveResponse()
                let slow = try RawConnection(port: port)
                defer { slow.close() }
                try slow.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                _ = try slow.receiveResponse()
                let started = ContinuousClock.now
                try slow.send("GET /healthz HTTP/1.1\r\n")
                var ended = false
                for index in 0..<40 {
                    do { try slow.send("X-Drip-\(index): 1\r\n") } catch { ended = true; break }
                    if slow.closedWithin(milliseconds: 300) { ended = true; break }
                }
                let elapsed = ContinuousClock.now - started
                // The quiet connection has been open past the head timeout with nothing in flight.
                try quiet.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                return (ended, elapsed, try quiet.receiveResponse())
            }
            #expect(ended, "the dripping connection was still open")
            #expect(elapsed < .seconds(10))
            #expect(elapsed >= .seconds(1))
            #expect(quietAnswer.hasPrefix("HTTP/1.1 200"), "\(quietAnswer)")
        }
    }

    /// The head clock stops at the head: a body that takes longer than the head timeout to arrive
    /// (a slow upload) is read whole, on a connection's first request and on a later one.
    @Test func aSlowBodyIsNotCutByTheHeadTimeout() async throws {
        var configuration = ServerConfiguration()
        configuration.requestHeadTimeout = .milliseconds(500)
        try await LiveServer.with(configuration: configuration) { server in
            let port = try #require(URLComponents(string: server.url)?.port)
            let token = server.token
            let answers = try await onThread { () throws -> [String] in
                let connection = try RawConnection(port: port)
                defer { connection.close() }
                var answers: [String] = []
                for name in ["prod", "staging"] {
                    let body = "{\"name\":\"\(name)\"}"
                    try connection.send(
                        "POST /v1/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
                            + body.prefix(5))
                    // The rest of the body after twice the head timeout: time passing is what is tested.
                    Thread.sleep(forTimeInterval: 1)
                    try connection.send(String(body.dropFirst(5)))
                    answers.append(try connection.receiveResponse())
                }
                return answers
            }
            #expect(answers.count == 2)
            #expect(answers.allSatisfy { $0.hasPrefix("HTTP/1.1 201") }, "\(answers)")
        }
    }
}

/// Bodies sent without a length (chunked): the body stream can be read only once, so a body the
/// server could not read whole must end the request, never reach a route half read.
extension RawHTTPTests {
    private static func chunked(_ method: String, _ path: String, token: String) -> String {
        "\(method) \(path) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nTransfer-Encoding: chunked\r\n\r\n"
    }

    private static func chunk(_ text: String) -> String {
        String(text.utf8.count, radix: 16) + "\r\n" + text + "\r\n"
    }

    /// Over the config limit, over the audit hash's limit, and over a route's own JSON limit:
    /// each is 413 with the reason, and the stored config keeps its last good version.
    @Test func aChunkedBodyOverALimitIsRefusedAndChangesNothing() async throws {
        var configuration = ServerConfiguration()
        configuration.config.maxContentSize = 64 * 1024
        try await LiveServer.with(configuration: configuration) { server in
            let port = try #require(URLComponents(string: server.url)?.port)
            let token = server.token
            let answers = try await onThread { () throws -> [String] in
                func exchange(_ request: String, body: String) throws -> String {
                    let connection = try RawConnection(port: port)
                    defer { connection.close() }
                    try connection.send(request)
                    // A megabyte in 64 KiB chunks; the server may answer before the last.
                    let piece = String(repeating: "a", count: 64 * 1024)
                    var sent = 0
                    while sent < body.utf8.count {
                        let part = String(body.utf8.dropFirst(sent).prefix(piece.utf8.count))!
                        guard (try? connection.send(Self.chunk(part))) != nil else { break }
                        sent += part.utf8.count
                    }
                    try? connection.send("0\r\n\r\n")
                    let head = try connection.receive(until: "\r\n\r\n")
                    return head + (try connection.receive(until: "}"))
                }
                let first = try RawConnection(port: port)
                defer { first.close() }
                try first.send("POST /v1/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: 16\r\n\r\n{\"name\":\"prod\"}\n")
                _ = try first.receive(until: "}")
                let good = "port: 8080\n"
                try first.send(Self.chunked("PUT", "/v1/config/prod/app.yaml", token: token) + Self.chunk(good) + "0\r\n\r\n")
                let stored = try first.receive(until: "\r\n\r\n")
                _ = try first.receive(until: "}")
                let big = "# " + String(repeating: "a", count: 100 * 1024) + "\n"
                let huge = "# " + String(repeating: "a", count: (1 << 20) + 100) + "\n"
                let namespace = "{\"name\":\"staging\",\"description\":\"" + String(repeating: "a", count: 70 * 1024) + "\"}"
                return [
                    stored,
                    try exchange(Self.chunked("PUT", "/v1/config/prod/app.yaml", token: token), body: big),
                    try exchange(Self.chunked("PUT", "/v1/config/prod/app.yaml", token: token), body: huge),
                    try exchange(Self.chunked("POST", "/v1/namespaces", token: token), body: namespace),
                ]
            }
            #expect(answers[0].hasPrefix("HTTP/1.1 200"), "\(answers[0])")
            #expect(answers[1].hasPrefix("HTTP/1.1 413"), "\(answers[1])")
            #expect(answers[1].contains("config prod/app.yaml is larger than the limit; the limit is 64KiB"), "\(answers[1])")
            #expect(answers[2].hasPrefix("HTTP/1.1 413"), "\(answers[2])")
            #expect(answers[2].contains("the request body is larger than the limit of 1MiB"), "\(answers[2])")
            #expect(answers[3].hasPrefix("HTTP/1.1 413"), "\(answers[3])")
            #expect(answers[3].contains("request body is larger than the limit"), "\(answers[3])")
            let record = try #require(try await server.store.get("/capstan/config/prod/app.yaml"))
            #expect(String(decoding: record.value, as: UTF8.self).contains("port: 8080"))
            #expect(try await server.store.get("/capstan/ns/staging") == nil)
        }
    }

    /// A client that leaves in the middle of a body (a timeout, a crash) writes nothing, and the
    /// server goes on serving.
    @Test func aClientLeavingMidBodyWritesNothing() async throws {
        try await LiveServer.with { server in
            let port = try #require(URLComponents(string: server.url)?.port)
            let token = server.token
            let after = try await onThread { () throws -> String in
                let first = try RawConnection(port: port)
                defer { first.close() }
                try first.send("POST /v1/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: 16\r\n\r\n{\"name\":\"prod\"}\n")
                _ = try first.receive(until: "}")
                for length in [nil, 100] {
                    let leaving = try RawConnection(port: port)
                    let head = length.map {
                        "PUT /v1/config/prod/app.yaml HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: \($0)\r\n\r\n"
                    } ?? Self.chunked("PUT", "/v1/config/prod/app.yaml", token: token) + Self.chunk("port: ")
                    try leaving.send(head + "port: ")
                    leaving.close()
                }
                let next = try RawConnection(port: port)
                defer { next.close() }
                try next.send("GET /v1/config/prod/app.yaml HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\n\r\n")
                return try next.receive(until: "\r\n\r\n")
            }
            #expect(after.hasPrefix("HTTP/1.1 404"), "\(after)")
            #expect(try await server.store.get("/capstan/config/prod/app.yaml") == nil)
            // Refused, so audited (by the server, on its own time): as a bad request, not as a
            // server error. (A request whose head the server had not routed yet has no entry.)
            let log = AuditLog(store: server.store)
            try await eventually("an audit entry for a left request") {
                try await !log.list(resourcePrefix: "/v1/config/prod/app.yaml").filter { $0.method == "PUT" }.isEmpty
            }
            let statuses = try await log.list(resourcePrefix: "/v1/config/prod/app.yaml").filter { $0.method == "PUT" }.map(\.status)
            #expect(statuses.allSatisfy { $0 == 400 }, "\(statuses)")
        }
    }
}
