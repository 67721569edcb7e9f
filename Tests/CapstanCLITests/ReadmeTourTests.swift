import CapstanTesting
import Foundation
import Testing

/// Runs the README's CLI tour, line by line, against a fresh server: the README stays true.
@Suite("README tour")
struct ReadmeTourTests {
    static let readme = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("README.md")

    /// The lines of the first `sh` block after the "## CLI tour" heading.
    static func tourLines() throws -> [String] {
        let text = try String(contentsOf: readme, encoding: .utf8)
        guard let heading = text.range(of: "## CLI tour"),
            let start = text.range(of: "```sh\n", range: heading.upperBound..<text.endIndex),
            let end = text.range(of: "```", range: start.upperBound..<text.endIndex)
        else {
            throw TimeoutError(what: "a CLI tour block in the README", timeout: .zero)
        }
        return text[start.upperBound..<end.lowerBound].split(separator: "\n").map(String.init)
    }

    @Test func everyTourLineWorksAsPasted() async throws {
        let lines = try Self.tourLines()
        #expect(lines.count >= 10)
        // As a new user has it: no token anywhere but what --dev saves for the CLI.
        let home = try TemporaryDirectory(prefix: "capstan-tour-home")
        defer { home.remove() }
        let credentials = home.file("credentials.json")
        let serverEnvironment = ["CAPSTAN_ROOT_TOKEN": "", "CAPSTAN_CREDENTIALS": credentials]
        try await ServerProcess.with(dataDirectory: nil, extraArguments: ["--dev"], environment: serverEnvironment) { server in
            try await runTour(lines, server: server, credentials: credentials)
        }
    }

    private func runTour(_ lines: [String], server: ServerProcess, credentials: String) async throws {
        let workDirectory = try TemporaryDirectory(prefix: "capstan-tour")
        defer { workDirectory.remove() }
        let binDirectory = URL(fileURLWithPath: CapstanBinary.path).deletingLastPathComponent().path
        let environment = [
            "PATH": "\(binDirectory):\(ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")",
            "CAPSTAN_ADDR": server.url,
            "CAPSTAN_TOKEN": "",
            "CAPSTAN_CREDENTIALS": credentials,
        ]
        var outputs: [String: CapstanBinary.Result] = [:]
        for line in lines {
            // The PATH line needs the package's build; the test already put the binary on PATH.
            if line.hasPrefix("export PATH=") { continue }
            let command = line.replacingOccurrences(of: "http://127.0.0.1:8740", with: server.url)
            if command.contains("config watch") {
                try await checkWatch(command, environment: environment, directory: workDirectory.path)
                continue
            }
            let result = try await Self.shell(command, environment: environment, directory: workDirectory.path)
            outputs[line] = result
            if line.contains("# refused") {
                #expect(result.status != 0, "\(line) should fail")
                #expect(result.stderrLines.count == 1, "\(line): one error line, got \(result.stderr)")
                #expect(result.stderr.hasPrefix("capstan: "))
            } else {
                #expect(result.status == 0, "\(line) failed: \(result.stderr)")
            }
        }
        let byCommand = { (fragment: String) -> CapstanBinary.Result? in
            outputs.first { $0.key.contains(fragment) }?.value
        }
        #expect(outputs["capstan config get prod/order-service/app.yaml"]?.stdout == "port: 8080\nworkers: 4\n")
        #expect(byCommand("--revision 12")?.stdout == "port: 9090\nworkers: 4\n")
        #expect(byCommand("config diff")?.stdout.contains("-port: 8080\n+port: 9090\n") == true)
        #expect(byCommand("printf 'port: [9090")?.stderr.contains("line 2") == true)
        #expect(byCommand("--if-revision 10")?.stderr.contains("precondition_failed") == true)
        #expect(byCommand("config ls prod -o json")?.stdout.contains("\"version\" : 3") == true)
        #expect(byCommand("curl")?.stdout.contains("ETag: \"14\"") == true)
    }

    private func checkWatch(_ command: String, environment: [String: String], directory: String) async throws {
        let watch = try ChildProcess(
            path: "/bin/bash", arguments: ["-c", "cd \(directory) && exec \(command)"], environment: environment)
        try await watch.stopping {
            try await checkWatchOutput(watch)
        }
    }

    private func checkWatchOutput(_ watch: ChildProcess) async throws {
        try await eventually(timeout: .seconds(30), "the watch to replay three changes: \(watch.output) \(watch.errorOutput)") {
            watch.output.split(separator: "\n").count >= 3
        }
        let events = watch.output.split(separator: "\n").prefix(3)
        #expect(events.allSatisfy { $0.hasPrefix("{") && $0.contains("\"key\":\"prod/order-service/app.yaml\"") })
        #expect(events.first?.contains("\"revision\":10") == true)
        #expect(events.first?.contains("\"comment\":\"first version\"") == true)
    }

    static func shell(_ command: String, environment: [String: String], directory: String) async throws -> CapstanBinary.Result {
        try await ChildProcess.runShell(command, environment: environment, directory: directory)
    }
}
