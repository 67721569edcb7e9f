import CapstanTesting
import Foundation
import Testing

/// A real server process held to 512 descriptors (`prlimit --nofile`) and flooded with
/// connections: it keeps serving, and it does not spin.
@Suite("Descriptor exhaustion", .serialized, .timeLimit(.minutes(3)))
struct DescriptorLimitTests {
    /// The server's CPU time so far, in seconds (user and system, from /proc).
    static func cpuSeconds(_ pid: Int32) throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.index(after: try #require(stat.lastIndex(of: ")")))...].split(separator: " ")
        // After the command: state is field 3, utime 14 and stime 15 (1-based, counting pid and comm).
        return Double(Int(fields[11])! + Int(fields[12])!) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The share of one core the server used over `seconds` (time must pass: it blocks).
    static func cpuShare(_ pid: Int32, over seconds: Double) throws -> Double {
        let before = try cpuSeconds(pid)
        Thread.sleep(forTimeInterval: seconds)
        return (try cpuSeconds(pid) - before) / seconds
    }

    /// How many descriptors the process has open.
    static func descriptors(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
    }

    static func healthz(_ port: Int) throws -> String {
        let connection = try RawConnection(port: port, timeoutSeconds: 5)
        defer { connection.close() }
        try connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        return try connection.receive(until: "\r\n\r\n")
    }

    static func withLimitedServer(_ body: (ServerProcess, Int) async throws -> Void) async throws {
        let home = try TemporaryDirectory(prefix: "capstan-nofile")
        defer { home.remove() }
        // Head and idle timeouts far away: they must not be what frees the descriptors.
        try await ServerProcess.with(
            dataDirectory: home.file("data"), extraArguments: ["--request-head-timeout", "60s", "--idle-timeout", "60s"]
        ) { server in
            let prlimit = try ChildProcess(
                path: "/usr/bin/prlimit", arguments: ["--pid", String(server.process.pid), "--nofile=512:512"])
            let limited = await prlimit.exitStatus()
            #expect(limited == 0, "prlimit failed")
            let port = try #require(URLComponents(string: server.url)?.port)
            try await ServerProcess.explaining(["server": server]) { try await body(server, port) }
        }
    }

    /// A server started under `prlimit --nofile=LIMIT` (512 by default): it caps its connections below the limit.
    static func withServerStartedUnderTheLimit(
        _ limit: String = "512:512", _ body: (ChildProcess, Int) async throws -> Void
    ) async throws {
        let home = try TemporaryDirectory(prefix: "capstan-nofile-start")
        defer { home.remove() }
        let process = try ChildProcess(
            path: "/usr/bin/prlimit",
            arguments: [
                "--nofile=\(limit)", CapstanBinary.path, "server", "--listen", "127.0.0.1:0", "--plain-http", "--log-level", "warning",
                "--data-dir", home.file("data"), "--request-head-timeout", "60s", "--idle-timeout", "60s",
            ])
        do {
            let line = try await process.waitForLine { $0.contains("listening on http") }
            let port = try #require(line.firstMatch(of: /127\.0\.0\.1:(\d+)/).flatMap { Int($0.output.1) })
            try await body(process, port)
            await process.stop()
        } catch {
            await process.stop()
            Issue.record("the server's log: \(process.errorOutput)")
            throw error
        }
    }

    /// A soft limit below the hard one is raised to it at start, so that a default `ulimit -n`
    /// of 1,024 does not cap the server at 960 agents.
    @Test func theSoftLimitIsRaisedToTheHardOneAtStart() async throws {
        try await Self.withServerStartedUnderTheLimit("256:4096") { process, _ in
            let limits = try String(contentsOfFile: "/proc/\(process.pid)/limits", encoding: .utf8)
            let line = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max open files") })
            #expect(line.split(separator: " ", omittingEmptySubsequences: true).suffix(3).prefix(2) == ["4096", "4096"], "\(line)")
        }
    }

    /// 600 malformed requests whose clients keep their connections open: each is answered and
    /// closed by the server, which goes on answering /healthz and writing to its store, idle.
    @Test func malformedConnectionsAreAnsweredAndFreedUnderTheLimit() async throws {
        try await Self.withLimitedServer { server, port in
            let (answered, held) = try await onThread { () throws -> (Int, Int) in
                var connections: [RawConnection] = []
                defer { for connection in connections { connection.close() } }
                for index in 0..<600 {
                    let connection = try RawConnection(port: port, timeoutSeconds: 2)
                    connections.append(connection)
                    try? connection.send(index % 2 == 0 ? "GE@T / HTTP/1.1\r\nHost: x\r\n\r\n" : "GET / HTTP/9.9\r\nHost: x\r\n\r\n")
                }
                var answered = 0
                var held = 0
                for connection in connections where held < 3 {
                    if let answer = try? connection.receiveUntilClosed(), answer.hasPrefix("HTTP/1.1 400") || answer.hasPrefix("HTTP/1.1 505") {
                        answered += 1
                    } else {
                        held += 1
                    }
                }
                return (answered, held)
            }
            #expect(answered == 600, "\(held) connections were held open without an answer")
            #expect(try await onThread { try Self.healthz(port) }.hasPrefix("HTTP/1.1 200"))
            let pid = server.process.pid
            let share = try await onThread { try Self.cpuShare(pid, over: 2) }
            #expect(share < 0.5, "the server used \(Int(share * 100)) % of a core while idle")
            let written = try await CapstanBinary.run(["ns", "create", "prod", "--server", server.url])
            #expect(written.status == 0, "\(written.stderr)")
        }
    }

    /// 600 idle connections to a server started under a 512-descriptor limit: it holds no more
    /// than the limit less a reserve, so its store still opens files; a connection made before the
    /// flood writes and reads, the server stays idle, and new connections are served once the
    /// flood leaves.
    @Test func connectionsAreCappedBelowTheDescriptorLimit() async throws {
        try await Self.withServerStartedUnderTheLimit { server, port in
            let pid = server.pid
            let (written, read, held, share) = try await onThread { () throws -> (String, String, Int, Double) in
                let early = try RawConnection(port: port, timeoutSeconds: 10)
                defer { early.close() }
                try early.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                _ = try early.receiveResponse()
                let holders = try (0..<600).map { _ in try RawConnection(port: port, timeoutSeconds: 2) }
                defer { for holder in holders { holder.close() } }
                let deadline = ContinuousClock.now + .seconds(20)
                while Self.descriptors(pid) < 440, ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.1) }
                Thread.sleep(forTimeInterval: 0.5)
                let share = try Self.cpuShare(pid, over: 2)
                let held = Self.descriptors(pid)
                let auth = "Authorization: Bearer \(TestAuth.rootToken)\r\n"
                try early.send("POST /v1/namespaces HTTP/1.1\r\nHost: x\r\n\(auth)Content-Length: 15\r\n\r\n{\"name\":\"prod\"}")
                let written = try early.receiveResponse()
                try early.send("PUT /v1/config/prod/app.yaml HTTP/1.1\r\nHost: x\r\n\(auth)Content-Length: 8\r\n\r\nport: 1\n")
                _ = try early.receiveResponse()
                try early.send("GET /v1/config/prod/app.yaml HTTP/1.1\r\nHost: x\r\n\(auth)\r\n")
                return (written, try early.receiveResponse(), held, share)
            }
            #expect(held <= 512 - 32, "the server holds \(held) descriptors")
            #expect(share < 0.5, "the server used \(Int(share * 100)) % of a core")
            #expect(written.hasPrefix("HTTP/1.1 201"), "\(written)")
            #expect(read.hasPrefix("HTTP/1.1 200") && read.hasSuffix("port: 1\n"), "\(read)")
            var answer = ""
            try await eventually(timeout: .seconds(20), "/healthz to answer once the flood left: \(answer)") {
                answer = (try? await onThread { try Self.healthz(port) }) ?? ""
                return answer.hasPrefix("HTTP/1.1 200")
            }
        }
    }

    /// Connections that hold every descriptor (legitimately, until the head timeout): accept
    /// fails with EMFILE and backs off rather than spinning, and serving resumes once they go.
    @Test func runningOutOfDescriptorsBacksOffAndRecovers() async throws {
        try await Self.withLimitedServer { server, port in
            let pid = server.process.pid
            let share = try await onThread { () throws -> Double in
                let holders = try (0..<600).map { _ in try RawConnection(port: port, timeoutSeconds: 2) }
                defer { for holder in holders { holder.close() } }
                // Measured once the server holds all it can: accepting is work, not spinning.
                let deadline = ContinuousClock.now + .seconds(20)
                while Self.descriptors(pid) < 500, ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.1) }
                Thread.sleep(forTimeInterval: 0.5)
                return try Self.cpuShare(pid, over: 3)
            }
            #expect(share < 0.5, "the server used \(Int(share * 100)) % of a core with no descriptor left")
            var answer = ""
            try await eventually(timeout: .seconds(20), "/healthz to answer again: \(answer)") {
                answer = (try? await onThread { try Self.healthz(port) }) ?? ""
                return answer.hasPrefix("HTTP/1.1 200")
            }
        }
    }
}
