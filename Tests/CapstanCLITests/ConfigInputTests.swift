import CapstanTesting
import Foundation
import Testing

/// `config put KEY FILE` reads what a shell hands it: a FIFO, a process substitution, as
/// `kubectl apply -f <(...)` does.
@Suite("Config input", .timeLimit(.minutes(2)))
struct ConfigInputTests {
    @Test func putReadsAFIFOAndAProcessSubstitution() async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-input")
        defer { directory.remove() }
        try await ServerProcess.with(dataDirectory: directory.file("data")) { server in
            #expect(try await CapstanBinary.run(["ns", "create", "app", "--server", server.url]).status == 0)

            // A FIFO: the writer blocks until capstan opens it, and it has no size to read up to.
            let fifo = directory.file("content")
            #expect(mkfifo(fifo, 0o600) == 0)
            let writer = try ChildProcess(path: "/bin/bash", arguments: ["-c", "printf 'port: 8080\\n' > '\(fifo)'"])
            writer.closeInput()
            let put = try await CapstanBinary.run(["config", "put", "app/a.yaml", fifo, "--server", server.url])
            #expect(put.status == 0, "\(put.stderr)")
            #expect(await writer.exitStatus() == 0)
            #expect(try await CapstanBinary.run(["config", "get", "app/a.yaml", "--server", server.url]).stdout == "port: 8080\n")

            // Process substitution, through the shell as a user types it (/dev/fd/63).
            let substituted = try await ChildProcess.runShell(
                "'\(CapstanBinary.path)' config put app/b.yaml <(printf 'a: 1\\nb: 2\\n') --server \(server.url)", environment: [:])
            #expect(substituted.status == 0, "\(substituted.stderr)")
            #expect(try await CapstanBinary.run(["config", "get", "app/b.yaml", "--server", server.url]).stdout == "a: 1\nb: 2\n")
        }
    }
}
