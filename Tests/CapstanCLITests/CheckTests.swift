import CapstanClient
import CapstanCore
import CapstanTesting
import Foundation
import Testing

/// Health checks run by a real agent: HTTP, TCP and commands turning a node's health.
@Suite("Health checks", .timeLimit(.minutes(2)))
struct CheckTests {
    static let joinToken = "test-join-token-0123456789"

    @Test func checksTurnANodesHealthAndOnlyHealthyUsesIt() async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-checks")
        defer { directory.remove() }
        try await ServerProcess.with(
            dataDirectory: directory.file("data"), extraArguments: ["--join-token", Self.joinToken, "--heartbeat-interval", "500ms"]
        ) { server in
            let agent = try await AgentProcess.start(
                server: server.url, dataDirectory: directory.file("agent"), name: "web-1", joinToken: Self.joinToken, labels: ["role=web"])
            try await agent.stopping {
                let client = CapstanClient(server: server.url, author: "test", token: TestAuth.rootToken)
                func capstan(_ arguments: [String]) async throws -> CapstanBinary.Result {
                    try await CapstanBinary.run(arguments, environment: ["CAPSTAN_ADDR": server.url])
                }
                // Fast enough to settle in seconds; a probe gets its whole interval, so that a loaded
                // machine's slow answer does not read as a failure.
                let fast = ["--interval", "500ms", "--timeout", "500ms", "--failures-before-critical", "2", "--successes-before-passing", "2"]
                let hostPort = String(server.url.dropFirst("http://".count))
                for (name, target) in [
                    ("web-http", ["--http", server.url + "/healthz"]), ("web-tcp", ["--tcp", hostPort]), ("web-cmd", ["--command", "true"]),
                    ("db-tcp", ["--tcp", "127.0.0.1:1"]), ("broken", ["--shell", "--command", "exit 3"]),
                ] {
                    let put = try await capstan(["check", "put", name, "-s", "role=web"] + target + fast)
                    #expect(put.status == 0, "\(name): \(put.stderr)")
                }
                var node: NodeInfo?
                try await eventually(timeout: .seconds(20), "every check settled: \(String(describing: node?.checks))") {
                    node = try? await client.nodes(selector: "name=web-1").items.first
                    return (node?.checks ?? [:]).count == 5 && !(node?.checks ?? [:]).values.contains(.pending)
                }
                #expect(node?.checks == ["web-http": .passing, "web-tcp": .passing, "web-cmd": .passing, "db-tcp": .critical, "broken": .critical])
                let list = try await capstan(["node", "ls"])
                #expect(list.stdout.contains("3 passing, 2 critical (broken, db-tcp)"), "\(list.stdout)")
                let shown = try await capstan(["check", "show", "db-tcp"])
                #expect(shown.stdout.contains("web-1"))
                #expect(shown.stdout.contains("critical"))
                #expect(shown.stdout.contains("Connection refused"), "\(shown.stdout)")

                // A critical check keeps the node out of --only-healthy jobs.
                let skipped = try await capstan(["job", "run", "--only-healthy", "--", "true"])
                #expect(skipped.stdout.contains("skipped"), "\(skipped.stdout)")
                let job = try await client.job(try #require(try await client.jobs().items.first?.id))
                #expect(job.nodes.first?.state == .skipped)
                #expect(job.nodes.first?.error?.contains("check broken, db-tcp was critical") == true, "\(String(describing: job.nodes.first?.error))")

                for name in ["db-tcp", "broken"] { #expect(try await capstan(["check", "rm", name]).status == 0) }
                try await eventually(timeout: .seconds(10), "the removed checks gone from the node") {
                    (try? await client.nodes(selector: "name=web-1").items.first?.checks?.count) == 3
                }
                let ran = try await capstan(["job", "run", "--only-healthy", "--", "true"])
                #expect(ran.status == 0, "\(ran.stderr)")
                #expect(ran.stdout.contains("succeeded: 1 succeeded"))

                // Bad input: nothing saved.
                let both = try await capstan(["check", "put", "x", "--http", "http://a/", "--tcp", "a:1"])
                #expect(both.status == 64)
                #expect(both.stderr.contains("exactly one of --http URL, --tcp HOST:PORT or --command CMD"))
                let slow = try await capstan(["check", "put", "x", "--tcp", "a:1", "--interval", "1s", "--timeout", "5s"])
                #expect(slow.status == 64)
                #expect(slow.stderr.contains("--timeout must be more than 0 and at most the interval"))
                let noPort = try await capstan(["check", "put", "x", "--tcp", "localhost"])
                #expect(noPort.status == 1)
                #expect(noPort.stderr.contains("must be HOST:PORT"))
                let ftp = try await capstan(["check", "put", "x", "--http", "ftp://example.com/"])
                #expect(ftp.status == 1)
                #expect(ftp.stderr.contains("must be an http:// or https:// URL"))
                #expect(try await client.checks().items.map(\.name).sorted() == ["web-cmd", "web-http", "web-tcp"])
            }
        }
    }
}
