import CapstanClient
import CapstanCore
import CapstanTesting
import Foundation
import Testing

/// Rollouts through the real binary: the CLI, identified API readers (GET, long poll, watch),
/// refusals, promote, abort and `--force`.
@Suite("Rollouts through the CLI and API", .timeLimit(.minutes(3)))
struct RolloutCommandTests {
    static let key = "prod/web/app.yaml"

    struct Fixture: Sendable {
        let server: ServerProcess
        let directory: TemporaryDirectory
        let client: CapstanClient

        func capstan(_ arguments: [String], stdin: String? = nil) async throws -> CapstanBinary.Result {
            try await CapstanBinary.run(arguments, stdin: stdin, environment: ["CAPSTAN_ADDR": server.url])
        }

        /// A client that names itself.
        func reader(_ header: String) throws -> CapstanClient {
            var reader = client
            reader.identity = try ClientIdentity(header: header)
            return reader
        }

        func file(_ name: String, _ content: String) throws -> String {
            let path = directory.file(name)
            try Data(content.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }
    }

    func withFixture(_ body: (Fixture) async throws -> Void) async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-rollouts")
        defer { directory.remove() }
        try await ServerProcess.with(dataDirectory: directory.file("data")) { server in
            let fixture = Fixture(server: server, directory: directory, client: CapstanClient(server: server.url, author: "test", token: TestAuth.rootToken))
            #expect(try await fixture.capstan(["ns", "create", "prod"]).status == 0)
            let put = try await fixture.capstan(["config", "put", Self.key], stdin: "port: 1\n")
            #expect(put.status == 0, "\(put.stderr)")
            try await body(fixture)
        }
    }

    /// Readers in and out of a rollout at 50 % of the score space, found by trying names.
    func readers(_ fixture: Fixture, labels: String) async throws -> (member: CapstanClient, other: CapstanClient) {
        var member: CapstanClient?
        var other: CapstanClient?
        for index in 0..<64 where member == nil || other == nil {
            let reader = try fixture.reader("shop-\(index); \(labels)")
            if try await reader.get(Self.key).rollout != nil { member = member ?? reader } else { other = other ?? reader }
        }
        return (try #require(member), try #require(other))
    }

    @Test func identifiedReadersGetTheCandidateAndPlainWritesAreRefused() async throws {
        try await withFixture { fixture in
            let start = try await fixture.capstan(["rollout", "start", "web-v2", "-s", "app=shop", "--percent", "50", "--steps", "50,100"])
            #expect(start.status == 0, "\(start.stderr)")
            let candidate = try await fixture.capstan(["config", "put", Self.key, try fixture.file("app-v2.yaml", "port: 2\n"), "--rollout", "web-v2"])
            #expect(candidate.status == 0, "\(candidate.stderr)")
            #expect(candidate.stdout == "stored a candidate of \(Self.key) in rollout web-v2\n")

            // A plain write is refused, in one line naming the rollout, and changes nothing.
            let plain = try await fixture.capstan(["config", "put", Self.key], stdin: "port: 9\n")
            #expect(plain.status == 1)
            #expect(plain.stderrLines.count == 1)
            #expect(plain.stderr.contains("under rollout web-v2"), "\(plain.stderr)")
            #expect(try await fixture.capstan(["config", "get", Self.key]).stdout == "port: 1\n")

            let (member, other) = try await readers(fixture, labels: "app=shop,zone=b")
            let read = try await member.get(Self.key)
            #expect(String(decoding: read.content, as: UTF8.self) == "port: 2\n")
            #expect(read.rollout == "web-v2")
            #expect(String(decoding: try await other.get(Self.key).content, as: UTF8.self) == "port: 1\n")
            // Outside the selector, or anonymous: the main version.
            let elsewhere = try fixture.reader("\(member.identity!.name); app=other")
            #expect(try await elsewhere.get(Self.key).rollout == nil)
            #expect(String(decoding: try await fixture.client.get(Self.key).content, as: UTF8.self) == "port: 1\n")
            // A malformed identity is refused in one clear line.
            await #expect { _ = try await fixture.reader("shop-1; app=sh op").get(Self.key) } throws: {
                "\($0)".contains("X-Capstan-Client")
            }

            // A member's long poll wakes on a new candidate and reads it.
            let index = read.index
            let memberClient = member
            async let polled = memberClient.get(Self.key, index: index, wait: .seconds(20))
            let second = try await fixture.capstan(["config", "put", Self.key, "--rollout", "web-v2"], stdin: "port: 3\n")
            #expect(second.status == 0, "\(second.stderr)")
            #expect(String(decoding: try await polled.content, as: UTF8.self) == "port: 3\n")

            // A member's watch sees the switch back to the main version when the rollout aborts.
            // From the revision read now: whenever the stream opens, it misses nothing after it.
            let from = try await fixture.client.get(Self.key).index + 1
            let watch = Task { () -> [ConfigEvent] in
                var events: [ConfigEvent] = []
                for try await event in memberClient.watch("prod/", from: from) {
                    events.append(event)
                    if event.content == "port: 1\n" { break }
                }
                return events
            }
            let abort = try await fixture.capstan(["rollout", "abort", "web-v2", "--reason", "bad port"])
            #expect(abort.status == 0, "\(abort.stderr)")
            let events = try await withTimeout(.seconds(20), "the member's watch") { try await watch.value }
            #expect(events.last?.content == "port: 1\n")
            #expect(String(decoding: try await member.get(Self.key).content, as: UTF8.self) == "port: 1\n")

            // History keeps the candidate as abandoned; show lists every transition.
            let history = try await fixture.client.history(Self.key)
            #expect(history.items.first?.comment.hasPrefix("candidate of rollout web-v2 (abandoned)") == true, "\(history.items)")
            let shown = try await fixture.client.rollout("web-v2")
            #expect(shown.state == .aborted)
            #expect(shown.transitions.map(\.action) == ["start", "candidate", "candidate", "abort"])
            #expect(shown.transitions.last?.detail == "bad port")
            let audit = try await fixture.client.audit(resource: "/v1/rollouts/")
            #expect(audit.items.contains { $0.resource == "/v1/rollouts/web-v2/abort?reason=bad%20port" || $0.resource.hasPrefix("/v1/rollouts/web-v2/abort") })
        }
    }

    @Test func promoteMakesTheCandidateMainAndForceAbortsFirst() async throws {
        try await withFixture { fixture in
            #expect(try await fixture.capstan(["rollout", "start", "web-v3", "--percent", "10"]).status == 0)
            #expect(try await fixture.capstan(["config", "put", Self.key, "--rollout", "web-v3"], stdin: "port: 4\n").status == 0)
            // One open rollout per key: a second is refused naming the first.
            #expect(try await fixture.capstan(["rollout", "start", "web-v4", "--nodes", "1"]).status == 0)
            let second = try await fixture.capstan(["config", "put", Self.key, "--rollout", "web-v4"], stdin: "port: 5\n")
            #expect(second.status == 1)
            #expect(second.stderr.contains("already under rollout web-v3"), "\(second.stderr)")

            let step = try await fixture.capstan(["rollout", "step", "web-v3"])
            #expect(step.status == 1)
            #expect(step.stderr.contains("last step"), "\(step.stderr)")
            let promote = try await fixture.capstan(["rollout", "promote", "web-v3", "-o", "json"])
            #expect(promote.status == 0, "\(promote.stderr)")
            #expect(promote.stdout.contains("\"state\" : \"promoted\""), "\(promote.stdout)")
            #expect(try await fixture.capstan(["config", "get", Self.key]).stdout == "port: 4\n")
            let history = try await fixture.client.history(Self.key)
            #expect(history.items.map(\.comment).prefix(2) == ["promoted from rollout web-v3", "candidate of rollout web-v3 (promoted)"])

            // --force aborts the rollout holding the key, then writes.
            #expect(try await fixture.capstan(["config", "put", Self.key, "--rollout", "web-v4"], stdin: "port: 5\n").status == 0)
            let forced = try await fixture.capstan(["config", "put", Self.key, "--force"], stdin: "port: 6\n")
            #expect(forced.status == 0, "\(forced.stderr)")
            #expect(try await fixture.capstan(["config", "get", Self.key]).stdout == "port: 6\n")
            let shown = try await fixture.client.rollout("web-v4")
            #expect(shown.state == .aborted)
            #expect(shown.transitions.last?.detail == "forced by a plain write of \(Self.key)")

            let listed = try await fixture.capstan(["rollout", "ls"])
            #expect(listed.stdout.contains("web-v3") && listed.stdout.contains("promoted"), "\(listed.stdout)")
            let json = try await fixture.client.rollouts()
            #expect(json.items.map(\.name).sorted() == ["web-v3", "web-v4"])
        }
    }

    @Test func badInputIsRefusedInOneLineAndCreatesNothing() async throws {
        try await withFixture { fixture in
            for arguments in [
                ["--percent", "0"], ["--percent", "101"], ["--percent", "50", "--steps", "50,10"], ["--percent", "10", "--gate", "metric:load1"],
                ["--percent", "10", "--gate", "check=nope"], ["--percent", "10", "--on-failure", "explode"], ["--percent", "10", "--nodes", "2"],
            ] {
                let result = try await fixture.capstan(["rollout", "start", "bad"] + arguments)
                #expect(result.status != 0, "\(arguments)")
                #expect(result.stderrLines.count == 1, "\(arguments): \(result.stderr)")
            }
            #expect(try await fixture.client.rollouts().items.isEmpty)
            #expect(try await fixture.capstan(["rollout", "start", "good", "--percent", "10"]).status == 0)
            let invalid = try await fixture.capstan(["config", "put", Self.key, "--rollout", "good"], stdin: "port: [1\n")
            #expect(invalid.status == 1)
            #expect(invalid.stderr.contains("line"), "\(invalid.stderr)")
            let unknown = try await fixture.capstan(["config", "put", "prod/web/nope.yaml", "--rollout", "good"], stdin: "a: 1\n")
            #expect(unknown.status == 1)
            #expect(unknown.stderr.contains("not found"), "\(unknown.stderr)")
            #expect(try await fixture.client.rollout("good").candidates.isEmpty)
            let missing = try await fixture.capstan(["rollout", "show", "nope"])
            #expect(missing.status == 1)
            #expect(missing.stderr.contains("rollout \"nope\" not found"))
        }
    }

    @Test func aRolloutNeedsTheRightsOfTheKeysItHolds() async throws {
        try await withFixture { fixture in
            #expect(try await fixture.capstan(["rollout", "start", "web-v5", "--percent", "10"]).status == 0)
            #expect(try await fixture.capstan(["config", "put", Self.key, "--rollout", "web-v5"], stdin: "port: 2\n").status == 0)
            _ = try await fixture.client.putRole("other-team", RoleSpec(rules: ["config:prod/other/:read,write"]))
            let token = try await fixture.client.createToken(TokenSpec(role: "other-team")).token
            var other = fixture.client
            other.token = token
            // Not its keys: it may neither see nor move the rollout, nor add a candidate of them.
            await #expect { _ = try await other.rollout("web-v5") } throws: { "\($0)".contains("may not read config \"prod/web/app.yaml\"") }
            await #expect { _ = try await other.rollout("web-v5", "promote") } throws: { "\($0)".contains("may not write config") }
            await #expect { _ = try await other.putCandidate(Self.key, rollout: "web-v5", content: Data("port: 3\n".utf8)) } throws: {
                "\($0)".contains("may not write")
            }
            #expect(try await other.rollouts().items.isEmpty, "a listing leaves out what the role may not read")
            #expect(try await fixture.client.rollout("web-v5").state == .running)
            // It may start a rollout of its own (it may write config somewhere).
            _ = try await other.startRollout("other-v1", RolloutSpec(percentSteps: [10]))
        }
    }

    @Test func everyRolloutCommandHasHelp() async throws {
        for command in ["start", "ls", "show", "status", "step", "promote", "abort", "pause", "resume"] {
            let help = try await CapstanBinary.run(["rollout", command, "--help"])
            #expect(help.status == 0, "\(command)")
            #expect(help.stdout.contains("USAGE: capstan rollout \(command)"), "\(command): \(help.stdout)")
        }
        let put = try await CapstanBinary.run(["config", "put", "--help"])
        #expect(put.stdout.contains("--rollout") && put.stdout.contains("--force"))
    }
}
