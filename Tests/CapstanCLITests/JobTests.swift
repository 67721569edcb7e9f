import CapstanClient
import CapstanCore
import CapstanTesting
import Foundation
import Logging
import Testing

@testable import CapstanAgent

#if canImport(Glibc)
    import Glibc
#endif

/// Jobs run by real agents as real child processes.
@Suite("Jobs on nodes", .serialized, .timeLimit(.minutes(3)))
struct JobTests {
    static let joinToken = "test-join-token-0123456789"

    struct Fixture: Sendable {
        let server: ServerProcess
        let client: CapstanClient
        let directory: TemporaryDirectory

        func agent(_ name: String, labels: [String] = [], extra: [String] = []) async throws -> ChildProcess {
            try await AgentProcess.start(
                server: server.url, dataDirectory: directory.file("agent-\(name)"), name: name, joinToken: JobTests.joinToken,
                labels: labels, extraArguments: extra)
        }

        func capstan(_ arguments: [String]) async throws -> CapstanBinary.Result {
            // The server comes from the environment: anything after `--` is the job's command.
            try await CapstanBinary.run(arguments, environment: ["CAPSTAN_ADDR": server.url])
        }

        /// Runs `job run ... --detach` and answers the job id.
        func detached(_ arguments: [String]) async throws -> String {
            let result = try await capstan(["job", "run", "--detach"] + arguments)
            #expect(result.status == 0, "\(result.stderr)")
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func job(_ id: String, until what: String, _ condition: @escaping @Sendable (JobInfo) -> Bool) async throws -> JobInfo {
            var job: JobInfo?
            try await eventually(timeout: .seconds(30), "\(what): \(String(describing: job))") {
                job = try? await client.job(id)
                return job.map(condition) ?? false
            }
            return try #require(job)
        }
    }

    func withFixture<T: Sendable>(_ body: (Fixture) async throws -> T) async throws -> T {
        let directory = try TemporaryDirectory(prefix: "capstan-jobs")
        defer { directory.remove() }
        return try await ServerProcess.with(
            dataDirectory: directory.file("data"), extraArguments: ["--join-token", Self.joinToken, "--heartbeat-interval", "200ms"]
        ) { server in
            try await body(Fixture(server: server, client: CapstanClient(server: server.url, author: "test", token: TestAuth.rootToken), directory: directory))
        }
    }

    /// Whether a process with this pid still runs (a zombie counts as gone).
    static func alive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else {
            return false
        }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first != "Z"
    }

    static func pid(in file: String) throws -> Int32 {
        try #require(FileManager.default.contents(atPath: file).flatMap { Int32(String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) })
    }

    @Test func aCommandRunsOnTheNodesItPicksWithOutputAndExitCodes() async throws {
        try await withFixture { fixture in
            let web1 = try await fixture.agent("web-1", labels: ["role=web"])
            try await web1.stopping {
                let web2 = try await fixture.agent("web-2", labels: ["role=web"])
                try await web2.stopping {
                    let db = try await fixture.agent("db-1", labels: ["role=db"])
                    try await db.stopping {
                        let ok = try await fixture.capstan(["job", "run", "-s", "role=web", "--", "sh", "-c", "echo out; echo err >&2"])
                        #expect(ok.status == 0, "\(ok.stderr)")
                        #expect(ok.stdout.contains("web-1: out"))
                        #expect(ok.stdout.contains("web-2 ! err"))
                        #expect(!ok.stdout.contains("db-1"))
                        #expect(ok.stdout.contains("succeeded: 2 succeeded"))

                        let list = try await fixture.client.jobs()
                        let id = try #require(list.items.first?.id)
                        let shown = try await fixture.capstan(["job", "show", id, "-o", "json"])
                        let job = try JSONDecoder.iso.decode(JobInfo.self, from: Data(shown.stdout.utf8))
                        #expect(job.state == .succeeded)
                        #expect(job.nodes.map(\.name) == ["web-1", "web-2"])
                        #expect(job.nodes.allSatisfy { $0.exitCode == 0 && $0.stdout == "out\n" && $0.stderr == "err\n" })

                        // A non-zero exit fails the node (no retry) and the command's exit status.
                        let failed = try await fixture.capstan(["job", "run", "-s", "name=db-*", "--retries", "2", "--shell", "--", "echo $((40+2)); exit 3"])
                        #expect(failed.status == 1)
                        #expect(failed.stdout.contains("db-1: 42"))
                        #expect(failed.stderr.contains("failed: 1 failed"))
                        // Not `first`: two jobs started in the same second list in either order.
                        let failedJob = try #require(try await fixture.client.jobs().items.first { $0.id != id })
                        let details = try await fixture.client.job(failedJob.id)
                        #expect(details.nodes.first?.exitCode == 3)
                        #expect(details.nodes.first?.attempts == 1)
                        #expect(details.nodes.first?.error == "exit status 3")

                        // Logs, all and per node.
                        let logs = try await fixture.capstan(["job", "logs", id, "--node", "web-2"])
                        #expect(logs.stdout == "web-2: out\nweb-2 ! err\n")
                    }
                }
            }
        }
    }

    @Test func aTimeoutKillsTheWholeProcessTree() async throws {
        try await withFixture { fixture in
            let agent = try await fixture.agent("node-1")
            try await agent.stopping {
                let pidFile = fixture.directory.file("background.pid")
                let result = try await fixture.capstan([
                    "job", "run", "--timeout", "1s", "--shell", "--", "sleep 60 & echo $! > \(pidFile); echo started; wait",
                ])
                #expect(result.status == 1)
                #expect(result.stdout.contains("node-1: started"))
                #expect(result.stdout.contains("timed_out"))
                let pid = try Self.pid(in: pidFile)
                try await eventually(timeout: .seconds(10), "the background sleep \(pid) to be killed with its group") { !Self.alive(pid) }
            }
        }
    }

    @Test func cancelKillsRunningCommandsAndCancelsNodesNotStarted() async throws {
        try await withFixture { fixture in
            let first = try await fixture.agent("a-1")
            try await first.stopping {
                let second = try await fixture.agent("a-2")
                try await second.stopping {
                    let pidFile = fixture.directory.file("cancel.pid")
                    let id = try await fixture.detached(["--batch", "1", "--shell", "--", "echo $$ > \(pidFile); exec sleep 60"])
                    _ = try await fixture.job(id, until: "the first node running") { $0.nodes.first?.state == .running }
                    try await eventually(timeout: .seconds(10), "the command's pid file") { FileManager.default.fileExists(atPath: pidFile) }
                    let pid = try Self.pid(in: pidFile)
                    let cancel = try await fixture.capstan(["job", "cancel", id])
                    #expect(cancel.status == 0, "\(cancel.stderr)")
                    let job = try await fixture.job(id, until: "the job cancelled") { $0.state == .cancelled }
                    #expect(job.nodes.map(\.state) == [.cancelled, .cancelled])
                    #expect(job.nodes[1].attempts == 0, "the second batch never started")
                    try await eventually(timeout: .seconds(10), "the cancelled sleep to be killed") { !Self.alive(pid) }
                    let again = try await fixture.capstan(["job", "cancel", id])
                    #expect(again.status == 1)
                    #expect(again.stderr.contains("already finished"))
                }
            }
        }
    }

    @Test func failuresPastTheThresholdAbortAndSkipTheRest() async throws {
        try await withFixture { fixture in
            let agents = try await [fixture.agent("n-1"), fixture.agent("n-2"), fixture.agent("n-3")]
            defer { for agent in agents { agent.signal(SIGKILL) } }
            let result = try await fixture.capstan(["job", "run", "--batch", "1", "--max-failures", "0", "--", "false"])
            #expect(result.status == 1)
            #expect(result.stderr.contains("aborted"))
            let job = try #require(try await fixture.client.job(try #require(try await fixture.client.jobs().items.first?.id)))
            #expect(job.state == .aborted)
            #expect(job.nodes.map(\.state) == [.failed, .skipped, .skipped])
            #expect(job.nodes[1].error?.contains("max-failures") == true)
            for agent in agents { await agent.stop() }
        }
    }

    @Test func aKilledAgentIsUnreachableAndADroppedConnectionIsRetried() async throws {
        try await withFixture { fixture in
            // Without retries: the node is unreachable as soon as its connection drops.
            let agent = try await fixture.agent("lost")
            let pidFile = fixture.directory.file("lost.pid")
            let id = try await fixture.detached(["--timeout", "60s", "--shell", "--", "echo $$ > \(pidFile); exec sleep 60"])
            _ = try await fixture.job(id, until: "the node running") { $0.nodes.first?.state == .running }
            try await eventually(timeout: .seconds(10), "the command's pid file") { FileManager.default.fileExists(atPath: pidFile) }
            let started = ContinuousClock.now
            agent.signal(SIGKILL)
            let job = try await fixture.job(id, until: "the job to end") { $0.state.isFinished }
            #expect(started.duration(to: .now) < .seconds(30), "the job waited for its timeout")
            #expect(job.nodes.first?.state == .unreachable)
            #expect(job.nodes.first?.error?.contains("dropped") == true)
            kill(try Self.pid(in: pidFile), SIGKILL)

            // With retries: the connection drops under the running command, the agent comes
            // back, and the command runs again.
            let restarted = try await AgentProcess.start(
                server: fixture.server.url, dataDirectory: fixture.directory.file("agent-lost"), name: "lost", joinToken: Self.joinToken)
            let mark = fixture.directory.file("retry.mark")
            let retried = try await fixture.detached([
                "-s", "name=lost", "--retries", "2", "--shell", "--",
                "if [ -f \(mark) ]; then echo second run; else echo $$ > \(mark); exec sleep 60; fi",
            ])
            _ = try await fixture.job(retried, until: "the first attempt running") { $0.nodes.first?.state == .running }
            try await eventually(timeout: .seconds(10), "the first attempt's mark") { FileManager.default.fileExists(atPath: mark) }
            let firstPid = try Self.pid(in: mark)
            restarted.signal(SIGKILL)
            let again = try await AgentProcess.start(
                server: fixture.server.url, dataDirectory: fixture.directory.file("agent-lost"), name: "lost", joinToken: Self.joinToken)
            try await again.stopping {
                let done = try await fixture.job(retried, until: "the retry to succeed") { $0.state.isFinished }
                #expect(done.state == .succeeded, "\(done)")
                #expect(done.nodes.first?.attempts == 2)
                #expect(done.nodes.first?.stdout == "second run\n")
            }
            kill(firstPid, SIGKILL)
        }
    }

    @Test func aNodeThatStopsHeartbeatingMidRunIsUnreachableAtOnce() async throws {
        try await withFixture { fixture in
            let agent = try await fixture.agent("frozen")
            try await agent.stopping {
                // Healthy first: only a healthy node's silence counts.
                try await eventually(timeout: .seconds(10), "the node healthy") {
                    (try? await fixture.client.node("frozen").status) == .healthy
                }
                let pidFile = fixture.directory.file("frozen.pid")
                let id = try await fixture.detached(["--timeout", "60s", "--shell", "--", "echo $$ > \(pidFile); exec sleep 60"])
                _ = try await fixture.job(id, until: "the node running") { $0.nodes.first?.state == .running }
                try await eventually(timeout: .seconds(10), "the command's pid file") { FileManager.default.fileExists(atPath: pidFile) }
                // Frozen, its connection stays open but says nothing.
                let started = ContinuousClock.now
                agent.signal(SIGSTOP)
                defer { agent.signal(SIGCONT) }
                let job = try await fixture.job(id, until: "the job to end") { $0.state.isFinished }
                #expect(started.duration(to: .now) < .seconds(30), "the job waited for its timeout")
                #expect(job.nodes.first?.state == .unreachable)
                #expect(job.nodes.first?.error == "the node stopped sending heartbeats during the run")
                agent.signal(SIGCONT)
                kill(try Self.pid(in: pidFile), SIGKILL)
            }
        }
    }

    @Test func aFollowedJobDoesNotHoldUpAServerShutdown() async throws {
        try await withFixture { fixture in
            let agent = try await fixture.agent("node-1")
            try await agent.stopping {
                let pidFile = fixture.directory.file("long.pid")
                let id = try await fixture.detached(["--timeout", "60s", "--shell", "--", "echo $$ > \(pidFile); echo waiting; exec sleep 60"])
                let follower = try ChildProcess(
                    path: CapstanBinary.path, arguments: ["job", "logs", id, "--follow"], environment: ["CAPSTAN_ADDR": fixture.server.url])
                _ = try await follower.waitForLine { $0 == "node-1: waiting" }
                fixture.server.process.signal(SIGTERM)
                let status = try await withTimeout(.seconds(20), "the server to exit with a job followed; its log: \(fixture.server.process.errorOutput)") {
                    await fixture.server.process.exitStatus()
                }
                #expect(status == 0, "the server's log: \(fixture.server.process.errorOutput)")
                await follower.stop()
                kill(try Self.pid(in: pidFile), SIGKILL)
            }
        }
    }

    @Test func aLargeOutputComesThroughWholeBesideHeartbeats() async throws {
        try await withFixture { fixture in
            let agent = try await fixture.agent("node-1")
            try await agent.stopping {
                // 300 KiB in each stream: messages of many frames, while heartbeats (every 200 ms)
                // and live output go out on the same connection.
                let result = try await fixture.capstan([
                    "job", "run", "--output-limit", "1MiB", "--shell", "--",
                    "for i in $(seq 1 3); do head -c 102400 /dev/zero | tr '\\0' a; head -c 102400 /dev/zero | tr '\\0' b >&2; sleep 0.1; done",
                ])
                #expect(result.status == 0, "\(result.stderr)")
                let id = try #require(try await fixture.client.jobs().items.first?.id)
                let node = try #require(try await fixture.client.job(id).nodes.first)
                #expect(node.stdout == String(repeating: "a", count: 3 * 102_400), "\(node.state) \(node.error ?? "")")
                #expect(node.stderr == String(repeating: "b", count: 3 * 102_400))
                #expect(!node.stdoutTruncated)
                let tooMuch = try await fixture.capstan(["job", "run", "--output-limit", "2MiB", "--", "true"])
                #expect(tooMuch.status == 1)
                #expect(tooMuch.stderr.contains("the output limit must be from 0 to 1 MiB"))
            }
        }
    }

    @Test func outputIsCappedWithTheCutMarkedAndAKeyReturnsTheSameJob() async throws {
        try await withFixture { fixture in
            let agent = try await fixture.agent("node-1")
            try await agent.stopping {
                let capped = try await fixture.capstan([
                    "job", "run", "--output-limit", "1KiB", "--shell", "--", "head -c 5000 /dev/zero | tr '\\0' x",
                ])
                #expect(capped.status == 0, "\(capped.stderr)")
                let id = try #require(try await fixture.client.jobs().items.first?.id)
                let job = try await fixture.client.job(id)
                #expect(job.nodes.first?.stdout == String(repeating: "x", count: 1024))
                #expect(job.nodes.first?.stdoutTruncated == true)
                let logs = try await fixture.capstan(["job", "logs", id])
                #expect(logs.stdout.hasSuffix("node-1: [output truncated]\n"))

                let first = try await fixture.detached(["--idempotency-key", "deploy-42", "--", "true"])
                let second = try await fixture.detached(["--idempotency-key", "deploy-42", "--", "true"])
                #expect(first == second)
                #expect(try await fixture.client.jobs().items.count == 2)
            }
        }
    }

    @Test func agentsMayRefuseRemoteCommands() async throws {
        try await withFixture { fixture in
            let closed = try await fixture.agent("closed", extra: ["--no-exec"])
            try await closed.stopping {
                let listed = try await fixture.agent("listed", extra: ["--allow-command", "echo"])
                try await listed.stopping {
                    let refused = try await fixture.capstan(["job", "run", "-s", "name=closed", "--", "echo", "hi"])
                    #expect(refused.status == 1)
                    #expect(refused.stdout.contains("--no-exec"))
                    let allowed = try await fixture.capstan(["job", "run", "-s", "name=listed", "--", "echo", "hi"])
                    #expect(allowed.status == 0, "\(allowed.stderr)")
                    #expect(allowed.stdout.contains("listed: hi"))
                    let other = try await fixture.capstan(["job", "run", "-s", "name=listed", "--", "ls"])
                    #expect(other.status == 1)
                    #expect(other.stdout.contains("does not allow \"ls\""))
                    let shell = try await fixture.capstan(["job", "run", "-s", "name=listed", "--shell", "--", "echo hi"])
                    #expect(shell.status == 1)
                    #expect(shell.stdout.contains("never through a shell"))
                }
            }
        }
    }

    @Test func badInputIsRefusedAndCreatesNoJob() async throws {
        try await withFixture { fixture in
            let agent = try await fixture.agent("node-1")
            try await agent.stopping {
                let cases: [([String], String)] = [
                    (["-s", "role in (web"], "never closed"),
                    (["--batch", "0"], "--batch \"0\" must be a count of nodes (1 or more)"),
                    (["--max-failures", "150%"], "--max-failures \"150%\" must be a percentage from 0% to 100%"),
                    (["--timeout", "soon"], "--timeout"),
                    (["--output-limit", "lots"], "--output-limit"),
                ]
                for (arguments, message) in cases {
                    let result = try await fixture.capstan(["job", "run"] + arguments + ["--", "true"])
                    #expect(result.status == 64, "\(arguments)")
                    #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
                }
                let empty = try await fixture.capstan(["job", "run", "--"])
                #expect(empty.status == 64)
                #expect(empty.stderr.contains("the command is empty"))
                let nobody = try await fixture.capstan(["job", "run", "-s", "role=none", "--", "true"])
                #expect(nobody.status == 1)
                #expect(nobody.stderr.contains("no node matches the selector \"role=none\""))
                // The API checks the same, for clients other than the CLI.
                for body in [
                    #"{"command":[]}"#, #"{"command":["true"],"batch":"0"}"#, #"{"command":["true"],"maxFailures":"150%"}"#,
                    #"{"command":["true"],"selector":"a in (b"}"#, #"{"command":["true"],"timeoutMilliseconds":0}"#,
                    #"{"command":["true"],"retries":99}"#, #"{"command":["true"],"idempotencyKey":"a b"}"#, #"{"nope":1}"#,
                ] {
                    let status = try await Self.post(fixture.server.url + "/v1/jobs", body)
                    #expect(status == 400, "\(body)")
                }
                #expect(try await fixture.client.jobs().items.isEmpty)
                let unknown = try await fixture.capstan(["job", "show", "20260101-000000-000000"])
                #expect(unknown.status == 1)
                #expect(unknown.stderr.contains("not found"))
            }
        }
    }

    /// `/bin/sh -c` takes one command line: a second element must not get joined onto it.
    @Test func aShellCommandIsExactlyOneElementOnTheServerAndTheAgent() async throws {
        try await withFixture { fixture in
            let agent = try await fixture.agent("node-1")
            try await agent.stopping {
                let marker = fixture.directory.file("joined-marker")
                let joined = JobSpec(selector: "", command: ["echo a", "; touch \(marker)"], shell: true)
                do {
                    _ = try await fixture.client.runJob(joined)
                    Issue.record("a shell job of two elements was accepted")
                } catch let error as ClientError {
                    #expect(error.problem?.status == 400, "\(error)")
                    #expect(error.message == "with shell, the command is exactly one element, the command line for /bin/sh -c; got 2")
                }
                do {
                    _ = try await fixture.client.putSchedule("joined", ScheduleSpec(cron: "* * * * *", job: joined))
                    Issue.record("a schedule of a two-element shell job was accepted")
                } catch let error as ClientError {
                    #expect(error.problem?.status == 400, "\(error)")
                    #expect(error.message.contains("exactly one element"), "\(error)")
                }
                #expect(try await fixture.client.jobs().items.isEmpty)
                #expect(try await fixture.client.schedules().items.isEmpty)
                // One element runs as before.
                let one = try await fixture.capstan(["job", "run", "--shell", "--", "echo a; echo b"])
                #expect(one.status == 0, "\(one.stderr)")
                #expect(one.stdout.contains("node-1: b"))
                #expect(!FileManager.default.fileExists(atPath: marker), "the second element ran")
            }
        }
        // The agent refuses it too, should a server send it.
        let directory = try TemporaryDirectory(prefix: "capstan-shell")
        defer { directory.remove() }
        let marker = directory.file("agent-marker")
        let executor = JobExecutor(policy: .all, logger: Logger(label: "test"))
        let result = await executor.run(
            AgentMessage.JobStart(
                id: "j", attempt: 1, command: ["echo a", "; touch \(marker)"], shell: true, timeoutMilliseconds: 5_000, outputLimitBytes: 1024)
        ) { _, _ in }
        #expect(result.outcome == .refused)
        #expect(result.error == "a shell command is exactly one argv element, the command line (got 2)")
        #expect(!FileManager.default.fileExists(atPath: marker), "the agent ran the second element")
    }

    @Test func schedulesArePutListedAndRemovedAndBadOnesRefused() async throws {
        try await withFixture { fixture in
            let put = try await fixture.capstan(["schedule", "put", "nightly", "--cron", "30 2 * * *", "--time-zone", "Europe/Paris", "--", "uptime"])
            #expect(put.status == 0, "\(put.stderr)")
            #expect(put.stdout.contains("saved schedule nightly, next tick"))
            let list = try await fixture.capstan(["schedule", "ls"])
            #expect(list.stdout.contains("30 2 * * * (Europe/Paris)"))
            #expect(list.stdout.contains("uptime"))
            let cases: [([String], String)] = [
                (["--cron", "61 * * * *"], "--cron: minute 61 is out of range 0-59 (column 1)"),
                (["--cron", "* * *"], "expected 5 fields"),
                (["--cron", "@daily", "--missed", "sometimes"], "--missed must be skip or run-once"),
                (["--cron", "@daily", "--time-zone", "Nowhere/City"], "is not a time zone name"),
                (["--cron", "@daily", "--batch", "0"], "--batch"),
            ]
            for (arguments, message) in cases {
                let result = try await fixture.capstan(["schedule", "put", "bad"] + arguments + ["--", "true"])
                #expect(result.status == 64, "\(arguments)")
                #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
            }
            let removed = try await fixture.capstan(["schedule", "rm", "nightly"])
            #expect(removed.status == 0)
            #expect(try await fixture.client.schedules().items.isEmpty)
            let again = try await fixture.capstan(["schedule", "rm", "nightly"])
            #expect(again.status == 1)
            #expect(again.stderr.contains("not found"))
        }
    }

    static func post(_ url: String, _ body: String) async throws -> Int {
        let result = try await ChildProcess.runShell(
            "curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -H \"Authorization: Bearer $CAPSTAN_TOKEN\" --data-binary @- \(url) <<'EOF'\n\(body)\nEOF",
            environment: [:])
        return Int(result.stdout) ?? 0
    }
}

extension JSONDecoder {
    static var iso: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
