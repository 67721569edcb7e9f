import CapstanClient
import CapstanCore
import CapstanTesting
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Templates rendered by real agents into real files.
@Suite("Templates on nodes", .timeLimit(.minutes(3)))
struct TemplateTests {
    static let joinToken = "test-join-token-0123456789"

    /// A server, a client, and a scratch directory the agents may write into.
    struct Fixture: Sendable {
        let server: ServerProcess
        let client: CapstanClient
        let directory: TemporaryDirectory

        var output: String { directory.file("out") }

        func put(_ key: String, _ content: String) async throws {
            _ = try await client.put(key, content: Data(content.utf8))
        }

        /// Starts an agent allowed to write into `out/`, and waits until it is connected.
        func agent(_ name: String, labels: [String] = [], allow: [String]? = nil) async throws -> ChildProcess {
            try await AgentProcess.start(
                server: server.url, dataDirectory: directory.file("agent-\(name)"), name: name, joinToken: TemplateTests.joinToken,
                labels: labels, allowedPaths: allow ?? [output])
        }

        func template(_ name: String) async throws -> CapstanBinary.Result {
            try await CapstanBinary.run(["template", "status", name, "--server", server.url])
        }

        func waitForStatus(
            _ name: String, _ what: String, _ condition: @escaping @Sendable (TemplateStatus) -> Bool
        ) async throws -> TemplateStatus {
            var status: TemplateStatus?
            try await eventually(timeout: .seconds(20), "\(what): \(String(describing: status))") {
                status = try? await client.templateStatus(name)
                return status.map(condition) ?? false
            }
            return try #require(status)
        }
    }

    func withFixture<T: Sendable>(_ body: (Fixture) async throws -> T) async throws -> T {
        let directory = try TemporaryDirectory(prefix: "capstan-templates")
        defer { directory.remove() }
        try FileManager.default.createDirectory(atPath: directory.file("out"), withIntermediateDirectories: true)
        return try await ServerProcess.with(
            dataDirectory: directory.file("data"), extraArguments: ["--join-token", Self.joinToken, "--heartbeat-interval", "200ms"]
        ) { server in
            let client = CapstanClient(server: server.url, author: "test", token: TestAuth.rootToken)
            _ = try await client.createNamespace("app")
            return try await body(Fixture(server: server, client: client, directory: directory))
        }
    }

    func read(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test func aTemplateBecomesAFileOnTheNodesItPicksAndFollowsChanges() async throws {
        try await withFixture { fixture in
            let web = try await fixture.agent("web-1", labels: ["role=web"])
            try await web.stopping {
                let db = try await fixture.agent("db-1", labels: ["role=db"])
                try await db.stopping {
                    try await fixture.put("app/nginx.conf.mustache", "listen {{port}};\nworkers {{workers}};\n# {{node.name}} {{node.labels.role}}\n")
                    try await fixture.put("app/base.yaml", "port: 8080\nworkers: 2\n")
                    try await fixture.put("app/web.yaml", "workers: 4\n")
                    let dest = fixture.output + "/nginx.conf"
                    let log = fixture.directory.file("reloads.log")
                    let put = try await CapstanBinary.run([
                        "template", "put", "nginx", "--selector", "role=web", "--source", "app/nginx.conf.mustache", "--dest", dest,
                        "--data", "app/base.yaml", "--data", "app/web.yaml", "--mode", "0640", "--check", "grep -q listen {{src}}",
                        "--reload", "echo reloaded >> \(log)", "--shell", "--server", fixture.server.url,
                    ])
                    #expect(put.status == 0, "\(put.stderr)")

                    let applied = try await fixture.waitForStatus("nginx", "web-1 applied") { $0.applied == 1 }
                    #expect(applied.nodes.map(\.name) == ["web-1"], "db-1 is not picked")
                    #expect(read(dest) == "listen 8080;\nworkers 4;\n# web-1 web\n")
                    let attributes = try FileManager.default.attributesOfItem(atPath: dest)
                    #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o640)
                    #expect(read(log) == "reloaded\n")

                    // A change is pushed and applied; the old revision's report becomes pending, then applied.
                    try await fixture.put("app/base.yaml", "port: 9090\nworkers: 2\n")
                    try await eventually(timeout: .seconds(20), "the new port on disk: \(read(dest) ?? "none")") {
                        read(dest)?.hasPrefix("listen 9090;") == true
                    }
                    let again = try await fixture.waitForStatus("nginx", "applied at the new revision") {
                        $0.applied == 1 && $0.nodes.first?.revision == $0.revision
                    }
                    #expect(again.pending == 0)
                    #expect(read(log) == "reloaded\nreloaded\n")

                    // A write of the same bytes (a comment-only config change elsewhere) reloads nothing.
                    try await fixture.put("app/web.yaml", "workers: 4\n# same result\n")
                    _ = try await fixture.waitForStatus("nginx", "applied again") {
                        $0.applied == 1 && $0.nodes.first?.revision == $0.revision
                    }
                    #expect(read(log) == "reloaded\nreloaded\n", "unchanged bytes must not reload")

                    // Server labels count: relabel db-1 as web and it gets the file too (same path, its own name).
                    _ = try await fixture.client.labelNode("db-1", NodeLabelChange(set: ["role": "web"]))
                    let both = try await fixture.waitForStatus("nginx", "both nodes applied") { $0.applied == 2 }
                    #expect(both.nodes.map(\.name) == ["db-1", "web-1"])

                    let listed = try await CapstanBinary.run(["template", "ls", "--server", fixture.server.url])
                    #expect(listed.stdout.contains("nginx"))
                    #expect(listed.stdout.contains("role=web"))
                    let shown = try await CapstanBinary.run(["node", "show", "web-1", "--server", fixture.server.url])
                    #expect(shown.stdout.contains("TEMPLATE"), "\(shown.stdout)")
                    #expect(shown.stdout.contains("nginx"), "\(shown.stdout)")
                    #expect(try await fixture.client.node("web-1").templates?.first?.state == .applied)
                    let status = try await fixture.template("nginx")
                    #expect(status.stdout.hasPrefix("nginx at revision"), "\(status.stdout)")
                    #expect(status.stdout.contains("2 applied, 0 failed, 0 pending"), "\(status.stdout)")
                }
            }
        }
    }

    @Test func failuresAreReportedAndLeaveTheOldFile() async throws {
        try await withFixture { fixture in
            let agent = try await fixture.agent("web-1")
            try await agent.stopping {
                let dest = fixture.output + "/app.conf"
                try await fixture.put("app/app.conf.mustache", "port={{port}}\n")
                try await fixture.put("app/values.yaml", "port: 1\n")
                let spec = TemplateSpec(selector: "", source: "app/app.conf.mustache", dest: dest, data: ["app/values.yaml"])
                _ = try await fixture.client.putTemplate("app", spec)
                _ = try await fixture.waitForStatus("app", "applied") { $0.applied == 1 }
                #expect(read(dest) == "port=1\n")

                // An unknown name: reported, the file stays.
                try await fixture.put("app/app.conf.mustache", "port={{prot}}\n")
                var failed = try await fixture.waitForStatus("app", "failed on the typo") { $0.failed == 1 }
                #expect(failed.nodes.first?.error?.contains("\"prot\"") == true, "\(failed)")
                #expect(read(dest) == "port=1\n")
                let text = try await fixture.template("app")
                #expect(text.stdout.contains("0 applied, 1 failed, 0 pending"), "\(text.stdout)")
                #expect(text.stdout.contains("web-1"))

                // A failing check (it runs only when the bytes change): reported, the file stays.
                var checked = spec
                checked.check = "grep -q nonexistent {{src}}"
                _ = try await fixture.client.putTemplate("app", checked)
                try await fixture.put("app/values.yaml", "port: 7\n")
                try await fixture.put("app/app.conf.mustache", "port={{port}}\n")
                failed = try await fixture.waitForStatus("app", "failed on the check") {
                    $0.failed == 1 && $0.nodes.first?.error?.contains("check") == true
                }
                #expect(failed.nodes.first?.error?.contains("exit status 1") == true, "\(failed)")
                #expect(read(dest) == "port=1\n")

                // A failing reload: the previous file is restored.
                try await fixture.put("app/values.yaml", "port: 2\n")
                var reloading = spec
                reloading.reload = "false"
                _ = try await fixture.client.putTemplate("app", reloading)
                failed = try await fixture.waitForStatus("app", "failed on the reload") {
                    $0.failed == 1 && $0.nodes.first?.error?.contains("reload") == true
                }
                #expect(failed.nodes.first?.error?.contains("the previous file was restored") == true, "\(failed)")
                #expect(read(dest) == "port=1\n")

                // Outside the allowed directories: refused and reported.
                var outside = spec
                outside.dest = fixture.directory.file("elsewhere.conf")
                _ = try await fixture.client.putTemplate("app", outside)
                failed = try await fixture.waitForStatus("app", "refused outside --allow-path") {
                    $0.failed == 1 && $0.nodes.first?.error?.contains("outside the agent's --allow-path") == true
                }
                #expect(!FileManager.default.fileExists(atPath: outside.dest))

                // Through a symbolic link out of the allowed directory: refused.
                let link = fixture.output + "/escape"
                try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: fixture.directory.path)
                var escaping = spec
                escaping.dest = link + "/escaped.conf"
                _ = try await fixture.client.putTemplate("app", escaping)
                failed = try await fixture.waitForStatus("app", "refused through a symlink") {
                    $0.failed == 1 && $0.nodes.first?.error?.contains("outside the agent's --allow-path") == true
                }
                #expect(!FileManager.default.fileExists(atPath: fixture.directory.file("escaped.conf")))

                let removed = try await CapstanBinary.run(["template", "rm", "app", "--server", fixture.server.url])
                #expect(removed.status == 0)
                #expect(read(dest) == "port=1\n", "removing a template leaves its file")
            }
        }
    }

    @Test func anAgentWithoutAllowedPathsRefusesEveryTemplate() async throws {
        try await withFixture { fixture in
            let agent = try await fixture.agent("web-1", allow: [])
            try await agent.stopping {
                try await fixture.put("app/t.mustache", "x\n")
                _ = try await fixture.client.putTemplate(
                    "t", TemplateSpec(selector: "", source: "app/t.mustache", dest: fixture.output + "/t.conf"))
                let failed = try await fixture.waitForStatus("t", "refused") { $0.failed == 1 }
                #expect(failed.nodes.first?.error?.contains("allows no template destinations") == true, "\(failed)")
            }
        }
    }

    /// Reports in the shape agents write take the gateway's fast path, others its decoder; a
    /// malformed message in between is skipped and the connection goes on.
    @Test func reportsInAnyValidShapeAreRecordedAndMalformedMessagesAreSkipped() async throws {
        try await withFixture { fixture in
            try await fixture.put("app/raw.mustache", "raw\n")
            _ = try await fixture.client.putTemplate("raw", TemplateSpec(selector: "name=raw-1", source: "app/raw.mustache", dest: "/tmp/raw.conf"))
            let identity = try await RawAgent.enroll(fixture.server.url, name: "raw-1")
            try await RawAgent.converse(fixture.server.url, identity: identity) { send, next in
                var set: AgentMessage.Templates?
                while set == nil { set = try AgentMessage.decode(try await next()).templates }
                let revision = try #require(set?.assignments.first?.revision)
                // Malformed, or almost a heartbeat or report: skipped, and the connection stays.
                for text in [
                    "not json", #"{"v":2,"type":"heartbeat","heartbeat":{"sequence":1}"#,
                    #"{"v":2,"type":"report","report":{"template":"raw","revision":\#(revision),"state":"applied","time":1}"#,
                    #"{"v":2,"type":"report","report":{"template":"raw","revision":\#(revision),"state":"done","time":1}}"#,
                ] {
                    try await send(text)
                }
                // The shape agents write (the fast path).
                try await send(#"{"v":2,"type":"report","report":{"template":"raw","revision":\#(revision),"state":"applied","time":1765000000123.5}}"#)
                let applied = try await fixture.waitForStatus("raw", "applied") { $0.applied == 1 }
                #expect(applied.nodes.first?.revision == revision)
                // Another key order, blanks and an error (the decoder).
                try await send(#"{ "type": "report", "v": 2, "report": {"state": "failed", "error": "check failed:\nexit 1", "template": "raw", "revision": \#(revision), "time": 1765000000124} }"#)
                let failed = try await fixture.waitForStatus("raw", "failed") { $0.failed == 1 }
                #expect(failed.nodes.first?.error == "check failed:\nexit 1")
            }
        }
    }

    @Test func badTemplatesAreRefusedByTheServer() async throws {
        try await withFixture { fixture in
            func put(_ arguments: [String]) async throws -> CapstanBinary.Result {
                try await CapstanBinary.run(["template", "put", "t", "--server", fixture.server.url] + arguments)
            }
            let relative = try await put(["--source", "app/t", "--dest", "etc/x.conf"])
            #expect(relative.status == 64)
            #expect(relative.stderr.contains("--dest must be an absolute path"))
            let dots = try await put(["--source", "app/t", "--dest", "/etc/../x.conf"])
            #expect(dots.status == 1)
            #expect(dots.stderr.contains("without \".\" or \"..\" segments"), "\(dots.stderr)")
            let selector = try await put(["--source", "app/t", "--dest", "/x.conf", "--selector", "env in prod"])
            #expect(selector.status == 64)
            #expect(selector.stderr.contains("column 8"), "\(selector.stderr)")
            let mode = try await put(["--source", "app/t", "--dest", "/x.conf", "--mode", "999"])
            #expect(mode.status == 64)
            let setuid = try await put(["--source", "app/t", "--dest", "/x.conf", "--mode", "4755"])
            #expect(setuid.status == 64)
            #expect(setuid.stderr.contains("no setuid"), "\(setuid.stderr)")
            // The API refuses it too, for clients other than the CLI.
            let api = try await ChildProcess.runShell(
                "curl -s -X PUT -H \"Authorization: Bearer $CAPSTAN_TOKEN\" --data-binary "
                    + #"'{"selector":"","source":"app/t","dest":"/x.conf","data":[],"mode":2541,"splayMilliseconds":0,"shell":false}' "#
                    + "\(fixture.server.url)/v1/templates/t", environment: [:])
            #expect(api.stdout.contains("permission bits only"), "\(api.stdout)")
            let source = try await put(["--source", "app/", "--dest", "/x.conf"])
            #expect(source.status == 1)
            #expect(source.stderr.contains("--source"), "\(source.stderr)")
            let missing = try await CapstanBinary.run(["template", "status", "nope", "--server", fixture.server.url])
            #expect(missing.status == 1)
            #expect(missing.stderr.contains("template \"nope\" not found"))
        }
    }

    @Test func anAgentCatchesUpAfterItWasDownAndKeepsFilesWhileTheServerIs() async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-templates")
        defer { directory.remove() }
        let output = directory.file("out")
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        let dest = output + "/app.conf"
        let arguments = ["--plain-http", "--join-token", Self.joinToken, "--heartbeat-interval", "200ms", "--listen"]
        // A fixed port, so that the agent finds the server again after its restart.
        let port = try freePort()
        let agentArguments = { (url: String) in
            [
                "agent", "--server", url, "--join-token", Self.joinToken, "--data-dir", directory.file("agent"), "--name", "web-1",
                "--allow-path", output, "--log-level", "warning",
            ]
        }
        let url = "http://127.0.0.1:\(port)"
        func startServer() async throws -> ChildProcess {
            let server = try ChildProcess(
                path: CapstanBinary.path,
                arguments: ["server", "--data-dir", directory.file("data"), "--log-level", "warning"] + arguments + ["127.0.0.1:\(port)"])
            _ = try await server.waitForLine { $0.contains("listening on") }
            return server
        }
        let server = try await startServer()
        let client = CapstanClient(server: url, author: "test", token: TestAuth.rootToken)
        var agent = try ChildProcess(path: CapstanBinary.path, arguments: agentArguments(url))
        _ = try await agent.waitForLine { $0 == "agent connected" }
        _ = try await client.createNamespace("app")
        _ = try await client.put("app/t.mustache", content: Data("v={{v}}\n".utf8))
        _ = try await client.put("app/v.yaml", content: Data("v: 1\n".utf8))
        _ = try await client.putTemplate("t", TemplateSpec(selector: "", source: "app/t.mustache", dest: dest, data: ["app/v.yaml"]))
        try await eventually(timeout: .seconds(20), "the file") { read(dest) == "v=1\n" }

        // The agent is down while the data changes; restarted, it catches up.
        await agent.stop()
        _ = try await client.put("app/v.yaml", content: Data("v: 2\n".utf8))
        agent = try ChildProcess(path: CapstanBinary.path, arguments: agentArguments(url))
        try await eventually(timeout: .seconds(20), "the caught-up file: \(read(dest) ?? "none")") { read(dest) == "v=2\n" }

        // The server goes away: the file stays as it is, and the agent restarts without it.
        await server.stop()
        await agent.stop()
        agent = try ChildProcess(path: CapstanBinary.path, arguments: agentArguments(url))
        try await agent.stopping {
            #expect(!agent.hasExited)
            #expect(read(dest) == "v=2\n")
            // Back: the agent reconnects by itself (backoff) and nothing needs redoing.
            let restarted = try await startServer()
            try await restarted.stopping {
                _ = try await agent.waitForLine(timeout: .seconds(60)) { $0 == "agent connected" }
                _ = try await client.put("app/v.yaml", content: Data("v: 3\n".utf8))
                try await eventually(timeout: .seconds(20), "the file after the server came back") { read(dest) == "v=3\n" }
            }
        }
    }
}
