import CapstanClient
import CapstanCore
import CapstanTesting
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Real `capstan agent` processes against a real `capstan server` process: enrollment, identity,
/// facts, labels, selectors, heartbeats and liveness, removal.
@Suite("Nodes and agents", .timeLimit(.minutes(3)))
struct NodeAgentTests {
    static let joinToken = "test-join-token-0123456789"
    /// Short, so that liveness changes within a test's patience.
    static let heartbeatArguments = ["--join-token", joinToken, "--heartbeat-interval", "100ms"]

    func withServer<T: Sendable>(_ body: (ServerProcess, CapstanClient) async throws -> T) async throws -> T {
        let directory = try TemporaryDirectory(prefix: "capstan-nodes")
        defer { directory.remove() }
        return try await ServerProcess.with(dataDirectory: directory.file("data"), extraArguments: Self.heartbeatArguments) {
            server in
            try await body(server, CapstanClient(server: server.url, author: "test", token: TestAuth.rootToken))
        }
    }

    /// Starts `capstan agent` with its data in `directory` and waits until it is connected.
    func startAgent(
        _ server: ServerProcess, directory: String, name: String, labels: [String] = [], joinToken: String? = joinToken
    ) async throws -> ChildProcess {
        try await AgentProcess.start(server: server.url, dataDirectory: directory, name: name, joinToken: joinToken, labels: labels)
    }

    func waitForStatus(_ client: CapstanClient, _ name: String, _ status: NodeStatus) async throws -> NodeInfo {
        var node: NodeInfo?
        try await eventually(timeout: .seconds(20), "node \(name) to be \(status): \(String(describing: node))") {
            node = try? await client.node(name)
            return node?.status == status
        }
        return try #require(node)
    }

    @Test func anAgentEnrollsReportsItsFactsAndTurnsHealthy() async throws {
        try await withServer { server, client in
            let directory = try TemporaryDirectory(prefix: "capstan-agent")
            defer { directory.remove() }
            let agent = try await startAgent(
                server, directory: directory.path, name: "web-1", labels: ["env=prod", "role=web"])
            try await agent.stopping {
                let node = try await waitForStatus(client, "web-1", .healthy)
                #expect(node.connected)
                #expect(node.labels == ["env": "prod", "role": "web"])
                #expect(node.agentLabels == node.labels)
                #expect(node.serverLabels.isEmpty)
                #expect(!node.facts.hostname.isEmpty)
                #expect(node.facts.cpuCount > 0)
                #expect(node.facts.memoryBytes > 0)
                #expect(node.facts.kernel.contains("."))
                #expect(node.facts.agentVersion == CapstanVersion.current)
                #expect(node.facts.bootTime.map { $0 < Date() } == true)
                #expect(node.lastSeen != nil)

                // The identity is kept, readable by its owner only.
                let identity = directory.file("identity.json")
                let attributes = try FileManager.default.attributesOfItem(atPath: identity)
                #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
                let stored = try JSONDecoder().decode([String: String].self, from: Data(contentsOf: URL(fileURLWithPath: identity)))
                #expect(stored["id"] == node.id)

                // `node ls -o json` gives what scripts need.
                let listed = try await CapstanBinary.run(["node", "ls", "--server", server.url, "-o", "json"])
                #expect(listed.status == 0, "\(listed.stderr)")
                let items = try #require(
                    try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
                #expect(items.count == 1)
                for field in ["name", "status", "labels", "facts", "lastSeen"] {
                    #expect(items.first?[field] != nil, "\(field) missing from \(listed.stdout)")
                }
                let table = try await CapstanBinary.run(["node", "ls", "--server", server.url])
                #expect(table.stdout.contains("web-1"))
                #expect(table.stdout.contains("healthy"))
                #expect(table.stdout.contains("env=prod,role=web"))
            }
        }
    }

    @Test func selectorsPickNodesAndServerLabelsWin() async throws {
        try await withServer { server, client in
            let webDirectory = try TemporaryDirectory(prefix: "capstan-agent")
            let dbDirectory = try TemporaryDirectory(prefix: "capstan-agent")
            defer {
                webDirectory.remove()
                dbDirectory.remove()
            }
            let web = try await startAgent(server, directory: webDirectory.path, name: "web-1", labels: ["env=prod", "role=web"])
            try await web.stopping {
                let db = try await startAgent(server, directory: dbDirectory.path, name: "db-1", labels: ["env=prod", "role=db"])
                try await db.stopping {
                    func names(_ selector: String) async throws -> [String] {
                        try await client.nodes(selector: selector).items.map(\.name)
                    }
                    #expect(try await names("") == ["db-1", "web-1"])
                    #expect(try await names("role in (web,api)") == ["web-1"])
                    #expect(try await names("env=prod,role!=web") == ["db-1"])
                    #expect(try await names("name=db-*") == ["db-1"])
                    #expect(try await names("!role").isEmpty)

                    let labelled = try await CapstanBinary.run(
                        ["node", "label", "db-1", "tier=gold", "role=primary", "--server", server.url])
                    #expect(labelled.status == 0, "\(labelled.stderr)")
                    #expect(labelled.stdout == "db-1: env=prod,role=primary,tier=gold\n")
                    #expect(try await names("role=primary") == ["db-1"])
                    let node = try await client.node("db-1")
                    #expect(node.agentLabels["role"] == "db", "the agent's own label is kept underneath")

                    _ = try await client.labelNode("db-1", NodeLabelChange(remove: ["role"]))
                    #expect(try await names("role=db") == ["db-1"], "removing the server label shows the agent's again")

                    let bad = try await CapstanBinary.run(["node", "ls", "--selector", "env in prod", "--server", server.url])
                    #expect(bad.status == 64)
                    #expect(bad.stderr.contains("expected \"(\""), "\(bad.stderr)")
                    #expect(bad.stderr.contains("column 8"), "\(bad.stderr)")
                    do {
                        _ = try await client.nodes(selector: "env=prod,,x")
                        Issue.record("a bad selector was accepted")
                    } catch let error as ClientError {
                        #expect(error.problem?.status == 400)
                        #expect(error.problem?.code == "invalid_selector")
                        #expect(error.problem?.column == 10)
                        #expect(error.message == "selector: expected a label key, found \",\" (column 10)")
                    }
                    let badLabel = try await CapstanBinary.run(["node", "label", "db-1", "tier=go/ld", "--server", server.url])
                    #expect(badLabel.status == 64)
                    #expect(badLabel.stderr.contains("value of label \"tier\" contains \"/\""), "\(badLabel.stderr)")
                    let missing = try await CapstanBinary.run(["node", "show", "nope", "--server", server.url])
                    #expect(missing.status == 1)
                    #expect(missing.stderr.contains("node \"nope\" not found"), "\(missing.stderr)")
                }
            }
        }
    }

    @Test func aSilentNodeTurnsUnhealthyAfterThreeIntervalsAndRecoversWithItsIdentity() async throws {
        try await withServer { server, client in
            let directory = try TemporaryDirectory(prefix: "capstan-agent")
            defer { directory.remove() }
            let agent = try await startAgent(server, directory: directory.path, name: "web-1")
            let healthy = try await waitForStatus(client, "web-1", .healthy)
            let killed = ContinuousClock.now
            agent.signal(SIGKILL)
            let unhealthy = try await waitForStatus(client, "web-1", .unhealthy)
            // Not at the disconnect: only after 3 heartbeat intervals (300 ms) of silence since the
            // last heartbeat, which came at most one interval before the kill.
            let after = killed.duration(to: .now)
            #expect(after >= .milliseconds(200), "unhealthy \(after) after the agent died")
            // The dead connection is seen as the server reads its end; on a loaded machine that may
            // come after the three silent intervals.
            if unhealthy.connected {
                try await eventually(timeout: .seconds(10), "the server sees the connection gone") {
                    (try? await client.node("web-1").connected) == false
                }
            }

            // Restarted without a join token, it is the same node and turns healthy again.
            let restarted = try await startAgent(server, directory: directory.path, name: "web-1", joinToken: nil)
            try await restarted.stopping {
                let recovered = try await waitForStatus(client, "web-1", .healthy)
                #expect(recovered.id == healthy.id)
                #expect(recovered.connected)
                #expect(try await client.nodes().items.count == 1)
            }
        }
    }

    @Test func aRemovedNodeIsDisconnectedAndItsIdentityRefused() async throws {
        try await withServer { server, client in
            let directory = try TemporaryDirectory(prefix: "capstan-agent")
            defer { directory.remove() }
            // Enroll once, then run without the token: after removal it cannot come back.
            let first = try await startAgent(server, directory: directory.path, name: "web-1")
            await first.stop()
            let agent = try await startAgent(server, directory: directory.path, name: "web-1", joinToken: nil)
            try await agent.stopping {
                let removed = try await CapstanBinary.run(["node", "rm", "web-1", "--server", server.url])
                #expect(removed.status == 0, "\(removed.stderr)")
                #expect(removed.stdout == "removed node web-1\n")
                let status = await agent.exitStatus()
                #expect(status == 1)
                #expect(agent.errorOutput.contains("refuses node web-1's identity and no --join-token"), "\(agent.errorOutput)")
                do {
                    _ = try await client.node("web-1")
                    Issue.record("the removed node is still there")
                } catch let error as ClientError {
                    #expect(error.problem?.code == "node_not_found")
                }
            }
        }
    }

    @Test func aWrongJoinTokenIsRefusedWithOneLine() async throws {
        try await withServer { server, _ in
            let directory = try TemporaryDirectory(prefix: "capstan-agent")
            defer { directory.remove() }
            let result = try await CapstanBinary.run([
                "agent", "--server", server.url, "--data-dir", directory.path, "--name", "web-1", "--join-token", "wrong-token-000000",
            ])
            #expect(result.status == 1)
            #expect(
                result.stderrLines.last == "capstan: the server refused to enroll node web-1: the join token is not this server's",
                "\(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: directory.file("identity.json")))

            let noToken = try await CapstanBinary.run(["agent", "--server", server.url, "--data-dir", directory.path])
            #expect(noToken.status == 1)
            #expect(noToken.stderr.contains("no --join-token to enroll with"), "\(noToken.stderr)")
        }
    }

    @Test(arguments: [
        (["--label", "env"], "--label: label \"env\" is not KEY=VALUE"),
        (["--label", "name=x"], "reserved"),
        (["--allow-path", "relative/dir"], "--allow-path must be an absolute directory"),
        (["--name", "Web_1"], "--name: node name \"Web_1\" must start with a lowercase letter or digit"),
        (["--server", "ftp://x"], "--server must be an http:// or https:// URL"),
        (["--log-level", "loud"], "--log-level must be one of"),
        (["--join-token", "cj1-abc-secret"], "--join-token: the join token starts like a pinned token (cj1-) but is not one"),
    ])
    func agentFlagsAreChecked(arguments: [String], message: String) async throws {
        let result = try await CapstanBinary.run(["agent", "--data-dir", "/nonexistent"] + arguments)
        #expect(result.status == 64)
        #expect(result.stderr.contains(message), "\(result.stderr)")
    }

    @Test func theJoinTokenIsKeptInTheStoreAcrossRestarts() async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-nodes")
        defer { directory.remove() }
        func token() async throws -> String {
            try await ServerProcess.with(dataDirectory: directory.file("data")) { server in
                let line = try await server.process.waitForLine { $0.contains("--join-token ") }
                return String(line.split(separator: " ").last ?? "")
            }
        }
        let first = try await token()
        #expect(first.count >= 32)
        #expect(try await token() == first)

        let short = try await CapstanBinary.run(["server", "--join-token", "short", "--data-dir", directory.file("x")])
        #expect(short.status == 64)
        #expect(short.stderr.contains("--join-token must be at least 16 characters"), "\(short.stderr)")
    }
}

/// The agent protocol as a foreign client sees it: a raw WebSocket.
@Suite("Agent protocol", .timeLimit(.minutes(1)))
struct AgentProtocolTests {
    @Test func anAgentOfAnotherProtocolVersionIsRefusedWithBothVersions() async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-protocol")
        defer { directory.remove() }
        try await ServerProcess.with(dataDirectory: directory.file("data"), extraArguments: ["--join-token", NodeAgentTests.joinToken]) {
            server in
            let identity = try await RawAgent.enroll(server.url, name: "old-1")
            let future = try await RawAgent.exchange(server.url, identity: identity, hello: #"{"v":99,"type":"hello","hello":{"labels":{},"facts":{"hostname":"h","os":"o","kernel":"k","arch":"a","cpuCount":1,"memoryBytes":1,"addresses":[],"agentVersion":"9"}}}"#)
            #expect(future.contains("agent protocol version 99 is not supported"), "\(future)")
            #expect(future.contains("accepts 1 to 2"), "\(future)")
            // Protocol 1 (before jobs) is still welcome.
            let previous = try await RawAgent.exchange(server.url, identity: identity, hello: #"{"v":1,"type":"hello","hello":{"labels":{},"facts":{"hostname":"h","os":"o","kernel":"k","arch":"a","cpuCount":1,"memoryBytes":1,"addresses":[],"agentVersion":"1"}}}"#)
            #expect(previous.contains(#""type":"welcome""#), "\(previous)")
            // A protocol 1 agent gets no jobs: its node fails them, saying why.
            let old = try await RawAgent.hold(server.url, identity: identity, hello: #"{"v":1,"type":"hello","hello":{"labels":{},"facts":{"hostname":"h","os":"o","kernel":"k","arch":"a","cpuCount":1,"memoryBytes":1,"addresses":[],"agentVersion":"1"}}}"#)
            let job = try await CapstanBinary.run(["job", "run", "-s", "name=old-1", "--", "true"], environment: ["CAPSTAN_ADDR": server.url])
            old.cancel()
            #expect(job.status == 1)
            #expect(job.stdout.contains("speaks protocol 1; jobs need protocol 2 (upgrade the agent)"), "\(job.stdout)")
            let garbage = try await RawAgent.exchange(server.url, identity: identity, hello: "not json")
            #expect(garbage.contains("the first message must be a hello"), "\(garbage)")
        }
    }
}
