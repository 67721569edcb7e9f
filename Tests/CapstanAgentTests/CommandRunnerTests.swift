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

    /// Commands start their executable directly: a program not on PATH fails to start with the
    /// reason, and a first word `env` would have read as a variable is no program (nothing runs).
    @Test func aProgramNotFoundDoesNotStartAndSaysWhy() async {
        for command in ["no-such-program-here --flag", "X=1 true"] {
            let result = await CommandRunner.run(command, shell: false, timeout: .seconds(5), policy: .all)
            #expect(!result.succeeded)
            let program = command.split(separator: " ")[0]
            #expect(result.summary == "could not start: cannot start \"\(program)\": no such program on PATH", "\(result.summary)")
        }
        let found = await CommandRunner.run("true", shell: false, timeout: .seconds(5), policy: .all)
        #expect(found.succeeded, "\(found.summary)")
    }

    /// An allow list holds files: a bare name is the file PATH finds for it, a path that file; a
    /// command's program is found the same way, so either spelling of an allowed file runs.
    @Test func anAllowListMatchesTheFileACommandStarts() throws {
        let trueFile = try #require(Executable.find("true", path: Executable.searchPath))
        for allowed in ["true", trueFile] {
            let policy = try ExecPolicy.allowing([allowed])
            #expect(policy == .only([trueFile]))
            for command in [["true"], [trueFile, "x"]] {
                #expect(policy.launch(command, shell: false) == .success(Launch(executable: trueFile, arguments: Array(command.dropFirst()))))
            }
            for (command, reason) in [
                ("-true", "a program name does not start with \"-\"; got \"-true\""),
                ("X=/true", "a program name has no \"=\" in it; got \"X=/true\""),
                ("bin/true", "a program path must be absolute; got \"bin/true\""),
                ("/elsewhere/true", "this agent does not allow \"/elsewhere/true\" (allowed: \(trueFile))"),
            ] {
                #expect(policy.launch([command], shell: false) == .failure(.refused(reason)))
            }
        }
    }
}
