import CapstanClient
import CapstanCore
import CapstanTesting
import Foundation
import Logging
import Testing

@testable import CapstanAgent

/// What a template and its data may cost: expansion on write, render size and time on the agent,
/// and modes that would let any local user change the file.
@Suite("Template limits", .timeLimit(.minutes(3)))
struct TemplateLimitTests {
    static let joinToken = "test-join-token-0123456789"

    /// 9^5 values from under 200 bytes of YAML.
    static let laughs = """
        a: &a [x, x, x, x, x, x, x, x, x]
        b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
        c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
        d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
        e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]

        """

    func withServer<T: Sendable>(_ body: (ServerProcess, CapstanClient, TemporaryDirectory) async throws -> T) async throws -> T {
        let directory = try TemporaryDirectory(prefix: "capstan-template-limits")
        defer { directory.remove() }
        try FileManager.default.createDirectory(atPath: directory.file("out"), withIntermediateDirectories: true)
        return try await ServerProcess.with(
            dataDirectory: directory.file("data"), extraArguments: ["--join-token", Self.joinToken, "--heartbeat-interval", "200ms"]
        ) { server in
            let client = CapstanClient(server: server.url, author: "test", token: TestAuth.rootToken)
            _ = try await client.createNamespace("app")
            return try await body(server, client, directory)
        }
    }

    @Test func aBillionLaughsDocumentIsRefusedOnPutWithOneLine() async throws {
        try await withServer { server, client, directory in
            let file = directory.file("laughs.yaml")
            try Data(Self.laughs.utf8).write(to: URL(fileURLWithPath: file))
            let put = try await CapstanBinary.run(["config", "put", "app/laughs.yaml", file, "--server", server.url])
            #expect(put.status == 1)
            #expect(put.stderrLines.count == 1, "\(put.stderr)")
            #expect(
                put.stderr.contains(
                    "invalid YAML: aliases expand the document to more than \(Self.laughs.utf8.count + 10_000) values (at most 10000 more than its text holds)"),
                "\(put.stderr)")
            #expect(put.stderr.contains("(line 1, column 32)"), "the values the aliases repeat: \(put.stderr)")
            #expect(try await client.list("app/").items.isEmpty, "nothing was written")
        }
    }

    @Test func aRenderPastTheOutputLimitFailsAndTheAgentGoesOn() async throws {
        try await withServer { server, client, directory in
            let output = directory.file("out")
            let agent = try await AgentProcess.start(
                server: server.url, dataDirectory: directory.file("agent"), name: "web-1", joinToken: Self.joinToken, allowedPaths: [output])
            try await agent.stopping {
                // Six sections nested over ten items: a million copies of 100 bytes.
                let nested = String(repeating: "{{#n}}", count: 6) + String(repeating: "x", count: 99) + "\n" + String(repeating: "{{/n}}", count: 6)
                _ = try await client.put("app/n.yaml", content: Data("n: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n".utf8))
                _ = try await client.put("app/huge.mustache", content: Data(nested.utf8))
                _ = try await client.put("app/small.mustache", content: Data("n={{#n}}{{.}}{{/n}}\n".utf8))
                let started = ContinuousClock.now
                _ = try await client.putTemplate(
                    "huge", TemplateSpec(selector: "", source: "app/huge.mustache", dest: output + "/huge.conf", data: ["app/n.yaml"]))
                var status: TemplateStatus?
                try await eventually(timeout: .seconds(20), "the huge template failed: \(String(describing: status))") {
                    status = try? await client.templateStatus("huge")
                    return status?.failed == 1
                }
                #expect(
                    status?.nodes.first?.error?.hasPrefix("the template renders more than 16MiB, the most a rendered file may have") == true,
                    "\(String(describing: status))")
                #expect(started.duration(to: .now) < .seconds(10))
                #expect(!FileManager.default.fileExists(atPath: output + "/huge.conf"))
                let shown = try await CapstanBinary.run(["template", "status", "huge", "--server", server.url])
                #expect(shown.stdout.contains("renders more than 16MiB"), "\(shown.stdout)")

                // The agent goes on: another template applies, a job runs.
                _ = try await client.putTemplate(
                    "small", TemplateSpec(selector: "", source: "app/small.mustache", dest: output + "/small.conf", data: ["app/n.yaml"]))
                try await eventually(timeout: .seconds(10), "the small template applied") {
                    (try? await client.templateStatus("small"))?.applied == 1
                }
                #expect(FileManager.default.contents(atPath: output + "/small.conf") == Data("n=12345678910\n".utf8))
                let job = try await CapstanBinary.run(["job", "run", "--server", server.url, "--", "true"])
                #expect(job.status == 0, "\(job.stderr)")
            }
        }
    }

    @Test func aWorldWritableModeIsRefusedUnlessAskedFor() async throws {
        try await withServer { server, client, directory in
            let output = directory.file("out")
            _ = try await client.put("app/t.mustache", content: Data("x\n".utf8))
            for mode in ["0666", "0777", "0602"] {
                let put = try await CapstanBinary.run([
                    "template", "put", "t", "--source", "app/t.mustache", "--dest", output + "/t.conf", "--mode", mode, "--server", server.url,
                ])
                #expect(put.status == 64, "\(mode)")
                #expect(put.stderr.contains("mode \(mode) lets every local user write the file"), "\(mode): \(put.stderr)")
            }
            // The API refuses it too (438 is 0666).
            let api = try await ChildProcess.runShell(
                "curl -s -X PUT -H \"Authorization: Bearer $CAPSTAN_TOKEN\" --data-binary "
                    + #"'{"selector":"","source":"app/t.mustache","dest":"/x.conf","data":[],"mode":438,"splayMilliseconds":0,"shell":false}' "#
                    + "\(server.url)/v1/templates/t", environment: [:])
            #expect(api.stdout.contains("mode 0666 lets every local user write the file"), "\(api.stdout)")
            #expect(api.stdout.contains("\"status\":400"), "\(api.stdout)")
            #expect(try await client.templates().items.isEmpty)

            // Asked for: saved, and applied with that mode.
            let agent = try await AgentProcess.start(
                server: server.url, dataDirectory: directory.file("agent"), name: "web-1", joinToken: Self.joinToken, allowedPaths: [output])
            try await agent.stopping {
                let put = try await CapstanBinary.run([
                    "template", "put", "t", "--source", "app/t.mustache", "--dest", output + "/t.conf", "--mode", "0666",
                    "--allow-world-writable", "--server", server.url,
                ])
                #expect(put.status == 0, "\(put.stderr)")
                try await eventually(timeout: .seconds(20), "the world-writable file") {
                    (try? await client.templateStatus("t"))?.applied == 1
                }
                let attributes = try FileManager.default.attributesOfItem(atPath: output + "/t.conf")
                #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o666)
            }
        }
        // An agent refuses such a template without the flag (one stored before the server did).
        let directory = try TemporaryDirectory(prefix: "capstan-world-writable")
        defer { directory.remove() }
        let applier = TemplateApplier(allowedPaths: [directory.path], logger: Logger(label: "test"))
        let spec = TemplateSpec(selector: "", source: "app/t", dest: directory.file("w.conf"), mode: 0o666)
        let report = await applier.apply(
            TemplateAssignment(name: "w", revision: 1, spec: spec, source: "x\n", data: .object([:]), problem: nil), node: .object([:]))
        #expect(report.state == .failed)
        #expect(report.error?.hasPrefix("mode 0666 lets every local user write the file") == true, "\(String(describing: report.error))")
        #expect(!FileManager.default.fileExists(atPath: directory.file("w.conf")))
    }
}
