import CapstanTesting
import Foundation
import Testing

/// What the TLS port does with what is not a good TLS client, on a real server process.
@Suite("TLS port edge", .timeLimit(.minutes(2)))
struct TLSEdgeTests {
    /// Plain HTTP to the TLS port is answered 400 with the hint to use https:// and closed, as Go's
    /// servers answer it, instead of an empty reply.
    @Test func plainHTTPIsAnsweredWithTheHintToUseHTTPS() async throws {
        let home = try TemporaryDirectory(prefix: "capstan-tls-plain")
        defer { home.remove() }
        try await ServerProcess.with(dataDirectory: home.file("data"), tls: true) { server in
            let port = try #require(URLComponents(string: server.url)?.port)
            let answer = try await onThread {
                let connection = try RawConnection(port: port, timeoutSeconds: 5)
                defer { connection.close() }
                try connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                return (try? connection.receiveUntilClosed()) ?? "no answer"
            }
            #expect(answer.hasPrefix("HTTP/1.1 400 Bad Request"), "\(answer)")
            #expect(answer.contains("Client sent an HTTP request to an HTTPS server: use https://"), "\(answer)")
        }
    }

    /// A plain request that arrives in several segments is answered once, and the segments after
    /// the answer are dropped while the connection lingers: they never reach the TLS handler, whose
    /// failure would close the connection at once, so that the client's next write fails (broken
    /// pipe, reset) before it reads the answer.
    @Test func plainHTTPInSeveralSegmentsIsAnsweredWhole() async throws {
        let home = try TemporaryDirectory(prefix: "capstan-tls-segments")
        defer { home.remove() }
        try await ServerProcess.with(dataDirectory: home.file("data"), tls: true) { server in
            let port = try #require(URLComponents(string: server.url)?.port)
            let answer = try await onThread { () -> String in
                let connection = try RawConnection(port: port, timeoutSeconds: 5)
                defer { connection.close() }
                try connection.send("GET /healthz HTTP/1.1\r\n")
                guard connection.readable(withinMilliseconds: 5000) else { return "no answer to the first segment" }
                // A slow client: the rest in segments 50 ms apart, well inside the second the
                // connection lingers after its answer. Time must pass here; there is no event.
                for segment in ["Host: x\r\n", "user-agent: raw\r\n", "accept: */*\r\n", "x-a: 1\r\n", "x-b: 2\r\n", "\r\n"] {
                    do {
                        try connection.send(segment)
                    } catch {
                        return "a later segment failed: \(error)"
                    }
                    Thread.sleep(forTimeInterval: 0.05)
                }
                do {
                    return try connection.receiveUntilClosed()
                } catch {
                    return "the connection failed before the answer was read whole: \(error)"
                }
            }
            #expect(answer.hasPrefix("HTTP/1.1 400 Bad Request"), "\(answer)")
            #expect(answer.hasSuffix("}"), "\(answer)")
            #expect(answer.components(separatedBy: "HTTP/1.1").count == 2, "\(answer)")
        }
    }

    /// A handshake that fails is logged once, with the client's address, and as what it is.
    @Test func aFailedHandshakeIsLoggedOnceWithTheClientAddress() async throws {
        let home = try TemporaryDirectory(prefix: "capstan-tls-handshake")
        defer { home.remove() }
        try await ServerProcess.with(dataDirectory: home.file("data"), extraArguments: ["--log-level", "info"], tls: true) { server in
            let port = try #require(URLComponents(string: server.url)?.port)
            let local = try await onThread { () throws -> String in
                let connection = try RawConnection(port: port, timeoutSeconds: 5)
                defer { connection.close() }
                // A TLS handshake record holding an empty ClientHello: refused at once.
                try connection.send("\u{16}\u{03}\u{01}\u{00}\u{04}\u{01}\u{00}\u{00}\u{00}")
                _ = try? connection.receiveUntilClosed()
                return connection.localPort.map { "127.0.0.1:\($0)" } ?? "127.0.0.1"
            }
            try await eventually(timeout: .seconds(10), "the handshake failure in the log: \(server.process.errorOutput)") {
                server.process.errorOutput.contains("TLS handshake failed")
            }
            // The server keeps serving; then every line about the connection is in.
            let healthy = try await CapstanBinary.run(["ns", "ls", "--server", server.url, "--ca-cert", home.file("data/ca.pem")])
            #expect(healthy.status == 0, "\(healthy.stderr)")
            let log = server.process.errorOutput + server.process.output
            let lines = log.split(separator: "\n").filter { $0.contains("TLS handshake failed") }
            #expect(lines.count == 1, "\(log)")
            #expect(lines.first?.contains(local) == true, "\(log)")
            #expect(!log.contains("upgrade"), "\(log)")
        }
    }
}
