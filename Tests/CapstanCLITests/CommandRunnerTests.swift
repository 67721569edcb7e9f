import Testing

@testable import CapstanAgent

/// The check and reload commands of templates: timeouts and stray background processes.
@Suite("Template commands", .timeLimit(.minutes(1)))
struct CommandRunnerTests {
    @Test func aTimeoutKillsEverythingTheCommandStarted() async {
        let started = ContinuousClock.now
        let result = await CommandRunner.run("sleep 30 & sleep 30", shell: true, timeout: .milliseconds(300), policy: .all)
        #expect(result.timedOut)
        #expect(!result.succeeded)
        #expect(started.duration(to: .now) < .seconds(25), "the run waited for the background sleep (30 s)")
    }

    @Test func aBackgroundProcessHoldingTheOutputIsKilledAtTheTimeout() async {
        // It keeps the command's output open, so the command counts as running until the
        // timeout kills its whole process group; the caller is not held past that.
        let started = ContinuousClock.now
        let result = await CommandRunner.run("sleep 30 & echo done", shell: true, timeout: .milliseconds(500), policy: .all)
        #expect(result.timedOut)
        #expect(result.output.contains("done"))
        #expect(started.duration(to: .now) < .seconds(25), "the run waited for the background sleep (30 s)")
    }

    @Test func argvIsSplitLikeAShellWithoutExpandingAnything() throws {
        #expect(try CommandRunner.split(#"grep -q 'a b' "c \"d\"" e\ f $HOME"#) == ["grep", "-q", "a b", #"c "d""#, "e f", "$HOME"])
        #expect(throws: (any Error).self) { try CommandRunner.split("echo 'open") }
    }
}
