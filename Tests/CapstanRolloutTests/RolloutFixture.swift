import CapstanClient
import CapstanCore
import CapstanTesting
import Foundation
import Testing

/// A real server and real agents labelled role=web, each node with a template of its own that
/// renders `app/app.yaml` ("port: 1" at first) through `app/conf.mustache` ("port {{port}}") into
/// the node's own file (the agents share this machine's disk): what the rollout suites run on.
struct RolloutFixture: Sendable {
    static let joinToken = "test-join-token-0123456789"

    let server: ServerProcess
    let directory: TemporaryDirectory
    let client: CapstanClient
    let names: [String]

    func capstan(_ arguments: [String], stdin: String? = nil) async throws -> CapstanBinary.Result {
        try await CapstanBinary.run(arguments, stdin: stdin, environment: ["CAPSTAN_ADDR": server.url])
    }

    /// The file `node`'s template renders.
    func file(_ node: String) -> String { directory.file("out/\(node).conf") }

    func content(_ node: String) -> String? {
        FileManager.default.contents(atPath: file(node)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The nodes whose file holds `text`.
    func holding(_ text: String) -> Set<String> { Set(names.filter { content($0) == text }) }

    /// Waits until exactly `count` nodes hold `text` and every other node holds `otherwise`.
    @discardableResult
    func waitFor(_ text: String, count: Int, otherwise: String, _ what: String) async throws -> Set<String> {
        try await eventually(timeout: .seconds(30), "\(what): \(names.map { "\($0)=\(content($0) ?? "none")" })") {
            holding(text).count == count && holding(otherwise).count == names.count - count
        }
        return holding(text)
    }

    /// Starts the agent of `name` (again, after it was killed: its data directory keeps its identity).
    func startAgent(_ name: String) async throws -> ChildProcess {
        try await AgentProcess.start(
            server: server.url, dataDirectory: directory.file("agent-\(name)"), name: name, joinToken: Self.joinToken,
            labels: ["role=web"], allowedPaths: [directory.file("out")])
    }

    /// The rollout's first member, once the server has admitted it.
    func member(_ rollout: String) async throws -> String {
        try await withTimeout(.seconds(20), "a member of \(rollout)") {
            while true {
                if let member = try await client.rolloutStatus(rollout).nodes.first(where: \.member) { return member.name }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// Runs `body` on a server with `count` agents (`node-0`, `node-1`, …) once every node renders
    /// the main version, then stops them.
    ///
    /// - Parameters:
    ///   - reload: the reload command of a node's template, if any (run by a shell).
    ///   - body: gets the fixture and each node's agent process, by name.
    static func with(
        count: Int, reload: (@Sendable (RolloutFixture, String) -> String)? = nil,
        _ body: (RolloutFixture, [String: ChildProcess]) async throws -> Void
    ) async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-rollout")
        defer { directory.remove() }
        try FileManager.default.createDirectory(atPath: directory.file("out"), withIntermediateDirectories: true)
        try await ServerProcess.with(
            dataDirectory: directory.file("data"),
            extraArguments: ["--join-token", joinToken, "--heartbeat-interval", "200ms", "--metrics-interval", "200ms"]
        ) { server in
            let client = CapstanClient(server: server.url, author: "test", token: TestAuth.rootToken)
            _ = try await client.createNamespace("app")
            _ = try await client.put("app/conf.mustache", content: Data("port {{port}}\n".utf8))
            _ = try await client.put("app/app.yaml", content: Data("port: 1\n".utf8))
            let fixture = RolloutFixture(server: server, directory: directory, client: client, names: (0..<count).map { "node-\($0)" })
            for name in fixture.names {
                _ = try await client.putTemplate(
                    "conf-\(name)",
                    TemplateSpec(
                        selector: "name=\(name)", source: "app/conf.mustache", dest: fixture.file(name), data: ["app/app.yaml"],
                        reload: reload?(fixture, name), shell: reload != nil))
            }
            var agents: [String: ChildProcess] = [:]
            defer { for agent in agents.values { agent.signal(SIGKILL) } }
            for name in fixture.names { agents[name] = try await fixture.startAgent(name) }
            try await fixture.waitFor("port 1\n", count: count, otherwise: "", "every node renders the main version")
            try await ServerProcess.explaining(["server": server]) { try await body(fixture, agents) }
            for agent in agents.values { await agent.stop() }
        }
    }
}

/// Two replicas on one real etcd, with a rollout `name` of `app/app.yaml` ("port: 1", candidate
/// "port: 2") that steps itself every second through 10, 20, 30, 40 and 100 % and promotes itself.
struct ReplicatedRollout: Sendable {
    let etcd: EtcdProcess
    let first: ServerProcess
    let second: ServerProcess
    let name: String

    func client(_ server: ServerProcess) -> CapstanClient {
        CapstanClient(server: server.url, author: "test", token: TestAuth.rootToken)
    }

    /// Waits until `server` reads the rollout promoted; answers it.
    func promoted(through server: ServerProcess, _ what: String) async throws -> RolloutInfo? {
        var info: RolloutInfo?
        try await eventually(timeout: .seconds(40), "\(what): \(String(describing: info?.transitions))") {
            info = try await client(server).rollout(name)
            return info?.state == .promoted
        }
        return info
    }

    /// Runs `body` on two replicas started with `arguments` (beside `--store`), the rollout started.
    static func with(_ name: String, arguments: [String] = [], _ body: @Sendable (ReplicatedRollout) async throws -> Void) async throws {
        try await EtcdProcess.with { etcd in
            let store = "etcd://" + etcd.clientURL.dropFirst("http://".count)
            let first = try await ServerProcess.start(dataDirectory: nil, extraArguments: ["--store", store] + arguments)
            let second = try await ServerProcess.start(dataDirectory: nil, extraArguments: ["--store", store] + arguments)
            defer { for server in [first, second] { server.process.signal(SIGKILL) } }
            try await ServerProcess.explaining(["first": first, "second": second]) {
                let replicated = ReplicatedRollout(etcd: etcd, first: first, second: second, name: name)
                let client = replicated.client(first)
                _ = try await client.createNamespace("app")
                _ = try await client.put("app/app.yaml", content: Data("port: 1\n".utf8))
                _ = try await client.startRollout(
                    name, RolloutSpec(percentSteps: [10, 20, 30, 40, 100], stepIntervalMilliseconds: 1000, autoPromote: true))
                _ = try await client.putCandidate("app/app.yaml", rollout: name, content: Data("port: 2\n".utf8))
                try await body(replicated)
            }
        }
    }
}
