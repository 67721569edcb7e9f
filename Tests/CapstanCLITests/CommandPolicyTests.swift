import CapstanClient
import CapstanCore
import CapstanTesting
import Foundation
import Testing

/// `--no-exec` and `--allow-command` hold for every command an agent runs, not only jobs:
/// templates' check and reload commands and command checks too.
@Suite("Command policy", .timeLimit(.minutes(3)))
struct CommandPolicyTests {
    static let joinToken = "test-join-token-0123456789"

    @Test func restrictedAgentsRunNoTemplateOrCheckCommandAndSaySo() async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-policy")
        defer { directory.remove() }
        let output = directory.file("out")
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        try await ServerProcess.with(
            dataDirectory: directory.file("data"), extraArguments: ["--join-token", Self.joinToken, "--heartbeat-interval", "200ms"]
        ) { server in
            let client = CapstanClient(server: server.url, author: "test", token: TestAuth.rootToken)
            func agent(_ name: String, _ extra: [String]) async throws -> ChildProcess {
                try await AgentProcess.start(
                    server: server.url, dataDirectory: directory.file("agent-\(name)"), name: name, joinToken: Self.joinToken,
                    labels: ["role=\(name)"], allowedPaths: [output], extraArguments: extra)
            }
            let closed = try await agent("closed", ["--no-exec"])
            try await closed.stopping {
                let listed = try await agent("listed", ["--allow-command", "/bin/true"])
                try await listed.stopping {
                    _ = try await client.createNamespace("app")
                    _ = try await client.put("app/t.mustache", content: Data("{{node.name}}\n".utf8))
                    let markers = (check: directory.file("check-ran"), reload: directory.file("reload-ran"), probe: directory.file("probe-ran"))
                    for (name, spec) in [
                        ("checked", TemplateSpec(selector: "", source: "app/t.mustache", dest: output + "/checked.conf", check: "touch \(markers.check)")),
                        ("reloaded", TemplateSpec(selector: "", source: "app/t.mustache", dest: output + "/reloaded.conf", reload: "touch \(markers.reload)")),
                    ] {
                        _ = try await client.putTemplate(name, spec)
                    }
                    let fast = (interval: Int64(100), timeout: Int64(100))
                    _ = try await client.putCheck(
                        "touchy", CheckSpec(selector: "", kind: .command, target: "touch \(markers.probe)", intervalMilliseconds: fast.interval, timeoutMilliseconds: fast.timeout))
                    // The allowed program runs: the policy narrows, it does not switch commands off.
                    _ = try await client.putCheck(
                        "truthy", CheckSpec(selector: "", kind: .command, target: "/bin/true", intervalMilliseconds: fast.interval, timeoutMilliseconds: fast.timeout, successesBeforePassing: 1))

                    for template in ["checked", "reloaded"] {
                        var status: TemplateStatus?
                        try await eventually(timeout: .seconds(20), "\(template) failed on both nodes: \(String(describing: status))") {
                            status = try? await client.templateStatus(template)
                            return status?.failed == 2
                        }
                        let errors = Dictionary(uniqueKeysWithValues: (status?.nodes ?? []).map { ($0.name, $0.error ?? "") })
                        let flag = template == "checked" ? "--check" : "--reload"
                        #expect(
                            errors["closed"]?.hasPrefix("\(flag) \"touch ") == true
                                && errors["closed"]?.contains("refused: this agent does not run commands (it was started with --no-exec)") == true,
                            "\(errors)")
                        #expect(errors["listed"]?.contains("refused: this agent does not allow \"touch\" (allowed: /bin/true)") == true, "\(errors)")
                        #expect(errors.values.allSatisfy { $0.hasSuffix("the file was left as it was") }, "\(errors)")
                    }
                    var checks: CheckInfo?
                    try await eventually(timeout: .seconds(20), "the checks settled: \(String(describing: checks))") {
                        let touchy = try? await client.check("touchy")
                        let truthy = try? await client.check("truthy")
                        checks = touchy
                        return touchy?.nodes?.count == 2 && touchy?.nodes?.allSatisfy({ $0.status == .critical }) == true
                            && truthy?.nodes?.first(where: { $0.name == "listed" })?.status == .passing
                    }
                    let outputs = Dictionary(uniqueKeysWithValues: (checks?.nodes ?? []).map { ($0.name, $0.output ?? "") })
                    #expect(outputs["closed"] == "refused: this agent does not run commands (it was started with --no-exec)", "\(outputs)")
                    #expect(outputs["listed"] == "refused: this agent does not allow \"touch\" (allowed: /bin/true)", "\(outputs)")
                    let shown = try await CapstanBinary.run(["check", "show", "touchy", "--server", server.url])
                    #expect(shown.stdout.contains("refused"), "\(shown.stdout)")

                    for (what, marker) in [("check", markers.check), ("reload", markers.reload), ("command check", markers.probe)] {
                        #expect(!FileManager.default.fileExists(atPath: marker), "a refused \(what) ran")
                    }
                    #expect(!FileManager.default.fileExists(atPath: output + "/checked.conf"), "a file was written without its check")
                }
            }
        }
    }

    /// `--allow-command true` runs the file `true` names on PATH and nothing else: not a program
    /// a launcher would read as `NAME=VALUE` (`env` did, and ran what came after it), nor another
    /// file called `true`.
    @Test func anAllowListRunsOnlyTheFilesItNames() async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-allowed")
        defer { directory.remove() }
        let output = directory.file("out")
        let elsewhere = directory.file("elsewhere")
        for made in [output, elsewhere] { try FileManager.default.createDirectory(atPath: made, withIntermediateDirectories: true) }
        // Another executable file named `true`, as a template with mode 0755 could write one.
        let impostor = elsewhere + "/true"
        let impostorMarker = directory.file("impostor-ran")
        try Data("#!/bin/sh\ntouch \(impostorMarker)\n".utf8).write(to: URL(fileURLWithPath: impostor))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: impostor)
        try await ServerProcess.with(
            dataDirectory: directory.file("data"), extraArguments: ["--join-token", Self.joinToken, "--heartbeat-interval", "200ms"]
        ) { server in
            let client = CapstanClient(server: server.url, author: "test", token: TestAuth.rootToken)
            let agent = try await AgentProcess.start(
                server: server.url, dataDirectory: directory.file("agent"), name: "listed", joinToken: Self.joinToken,
                allowedPaths: [output], extraArguments: ["--allow-command", "true"])
            try await agent.stopping {
                func smuggled(_ marker: String) -> String { "X=/true /bin/sh -c 'touch \(marker)'" }
                let markers = (
                    job: directory.file("job-ran"), check: directory.file("check-ran"), reload: directory.file("reload-ran"),
                    probe: directory.file("probe-ran")
                )
                let environment = ["CAPSTAN_ADDR": server.url]
                let job = try await CapstanBinary.run(
                    ["job", "run", "--", "X=/true", "/bin/sh", "-c", "touch \(markers.job)"], environment: environment)
                #expect(job.status == 1, "\(job.stdout)\(job.stderr)")
                #expect(job.stdout.contains("a program name has no \"=\" in it; got \"X=/true\""), "\(job.stdout)")
                let other = try await CapstanBinary.run(["job", "run", "--", impostor], environment: environment)
                #expect(other.status == 1, "\(other.stdout)\(other.stderr)")
                #expect(other.stdout.contains("this agent does not allow \"\(impostor)\""), "\(other.stdout)")
                // The allowed program still runs, by name or by the path it was found at.
                let allowed = try await CapstanBinary.run(["job", "run", "--", "true"], environment: environment)
                #expect(allowed.status == 0, "\(allowed.stdout)\(allowed.stderr)")

                _ = try await client.createNamespace("app")
                _ = try await client.put("app/t.mustache", content: Data("{{node.name}}\n".utf8))
                for (name, spec) in [
                    ("checked", TemplateSpec(selector: "", source: "app/t.mustache", dest: output + "/checked.conf", check: smuggled(markers.check))),
                    ("reloaded", TemplateSpec(selector: "", source: "app/t.mustache", dest: output + "/reloaded.conf", reload: smuggled(markers.reload))),
                    ("impostor", TemplateSpec(selector: "", source: "app/t.mustache", dest: output + "/impostor.conf", check: impostor)),
                ] {
                    _ = try await client.putTemplate(name, spec)
                }
                let fast = (interval: Int64(500), timeout: Int64(500))
                for (name, target) in [("smuggled", smuggled(markers.probe)), ("impostor", impostor)] {
                    _ = try await client.putCheck(
                        name, CheckSpec(selector: "", kind: .command, target: target, intervalMilliseconds: fast.interval, timeoutMilliseconds: fast.timeout))
                }
                for template in ["checked", "reloaded", "impostor"] {
                    var status: TemplateStatus?
                    try await eventually(timeout: .seconds(20), "\(template) failed: \(String(describing: status))") {
                        status = try? await client.templateStatus(template)
                        return status?.failed == 1
                    }
                    let error = status?.nodes.first?.error ?? ""
                    #expect(error.contains("refused") && error.hasSuffix("the file was left as it was"), "\(template): \(error)")
                }
                for name in ["smuggled", "impostor"] {
                    var check: CheckInfo?
                    try await eventually(timeout: .seconds(20), "\(name) is critical: \(String(describing: check))") {
                        check = try? await client.check(name)
                        return check?.nodes?.first?.status == .critical
                    }
                    #expect(check?.nodes?.first?.output?.hasPrefix("refused: ") == true, "\(name): \(String(describing: check))")
                }
                for (what, marker) in [
                    ("job", markers.job), ("check", markers.check), ("reload", markers.reload), ("command check", markers.probe),
                    ("other file named true", impostorMarker),
                ] {
                    #expect(!FileManager.default.fileExists(atPath: marker), "a refused \(what) ran")
                }
            }
        }
    }

    /// A bad `--allow-command` stops the agent before it starts, with the reason.
    @Test func aBadAllowListIsRefusedAtStartUp() async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-bad-allow")
        defer { directory.remove() }
        for (program, message) in [
            ("no-such-program-here", "--allow-command \"no-such-program-here\": no such program on PATH (give its absolute path)"),
            ("bin/true", "--allow-command \"bin/true\": a program path must be absolute; got \"bin/true\""),
            ("X=/true", "--allow-command \"X=/true\": a program name has no \"=\" in it; got \"X=/true\""),
        ] {
            let result = try await CapstanBinary.run(["agent", "--server", "http://127.0.0.1:9", "--data-dir", directory.file("agent"), "--allow-command", program])
            #expect(result.status == 64, "\(program): \(result.stderr)")
            #expect(result.stderr.contains(message), "\(program): \(result.stderr)")
        }
    }
}
