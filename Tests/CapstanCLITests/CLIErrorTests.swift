import CapstanTesting
import Foundation
import Testing

/// Every failure a user can hit from the CLI: one line on standard error, a non-zero exit,
/// nothing on standard output, nothing changed on the server.
@Suite("CLI errors")
struct CLIErrorTests {
    static func withServer(_ body: (ServerProcess) async throws -> Void) async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-cli")
        defer { directory.remove() }
        try await ServerProcess.with(dataDirectory: directory.path, extraArguments: ["--max-config-size", "1KiB"]) { server in
            let created = try await CapstanBinary.run(["ns", "create", "app", "--server", server.url])
            #expect(created.status == 0)
            try await body(server)
        }
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var arguments: [String]
        var stdin: String?
        var status: Int32
        var message: String
        /// Whether the command takes --server (the root command does not).
        var client = true
        var testDescription: String { arguments.joined(separator: " ") }
    }

    static let cases: [Case] = [
        Case(arguments: ["config", "put", "app/a.yaml", "--bogus"], status: 64, message: "Unknown option '--bogus'"),
        Case(arguments: ["config", "put", "app//a.yaml"], stdin: "a: 1", status: 64, message: "empty segment"),
        Case(arguments: ["config", "put", "app/../a.yaml"], stdin: "a: 1", status: 64, message: "\"..\" segment"),
        Case(arguments: ["config", "put", "App/a.yaml"], stdin: "a: 1", status: 64, message: "invalid character"),
        Case(arguments: ["config", "put", "app/a.yaml"], stdin: "a: [1\n", status: 1, message: "invalid_content"),
        Case(arguments: ["config", "put", "app/a.json"], stdin: "{\"a\": 1,}", status: 1, message: "line 1, column 9"),
        Case(arguments: ["config", "put", "app/a.toml"], stdin: "a = \n", status: 1, message: "invalid TOML"),
        Case(arguments: ["config", "put", "app/a.txt", "--format", "xml"], stdin: "x", status: 64, message: "xml"),
        Case(arguments: ["config", "put", "nowhere/a.yaml"], stdin: "a: 1", status: 1, message: "namespace_not_found"),
        Case(arguments: ["config", "put", "app/big.txt"], stdin: String(repeating: "x", count: 2048), status: 1, message: "payload_too_large"),
        Case(arguments: ["config", "put", "app/a.yaml", "/no/such/file.yaml"], status: 64, message: "cannot read /no/such/file.yaml: no such file or directory"),
        Case(arguments: ["config", "put", "app/a.yaml", "/"], status: 64, message: "cannot read /: is a directory"),
        Case(arguments: ["config", "get", "app/missing.yaml"], status: 1, message: "config_not_found"),
        Case(arguments: ["config", "diff", "app/missing.yaml", "1"], status: 1, message: "not found"),
        Case(arguments: ["config", "ls", "app/../x"], status: 64, message: "\"..\""),
        Case(arguments: ["ns", "create", "Bad_Name"], status: 64, message: "invalid character"),
        Case(arguments: ["ns", "create", "app"], status: 1, message: "namespace_exists"),
        Case(arguments: ["ns", "rm", "ghost"], status: 1, message: "namespace_not_found"),
        Case(arguments: ["config", "ls", "-o", "xml"], status: 64, message: "xml"),
        Case(arguments: ["config", "watch", "app/", "--count", "0"], status: 64, message: "--count must be at least 1"),
        Case(arguments: ["frobnicate"], status: 64, message: "frobnicate", client: false),
    ]

    @Test(arguments: cases)
    func failsWithOneLine(_ testCase: Case) async throws {
        try await Self.withServer { server in
            let before = try await CapstanBinary.run(["config", "ls", "-o", "json", "--server", server.url])
            let result = try await CapstanBinary.run(
                testCase.arguments + (testCase.client ? ["--server", server.url] : []), stdin: testCase.stdin)
            #expect(result.status == testCase.status, "stderr: \(result.stderr)")
            #expect(result.stderrLines.count == 1, "one line expected, got: \(result.stderr)")
            #expect(result.stderr.hasPrefix("capstan: "))
            #expect(result.stderr.contains(testCase.message), "got: \(result.stderr)")
            #expect(result.stdout.isEmpty)
            let after = try await CapstanBinary.run(["config", "ls", "-o", "json", "--server", server.url])
            #expect(after.stdout == before.stdout, "a failed command changed the configs")
        }
    }

    @Test func unreachableServerIsOneLine() async throws {
        let result = try await CapstanBinary.run(["ns", "ls", "--server", "http://127.0.0.1:1"])
        #expect(result.status == 1)
        #expect(result.stderr == "capstan: cannot reach Capstan at http://127.0.0.1:1: connection refused\n")
        let both = try await CapstanBinary.run(["ns", "ls", "--server", "http://127.0.0.1:1,http://127.0.0.1:2"])
        #expect(both.status == 1)
        #expect(
            both.stderr
                == "capstan: cannot reach Capstan at any of http://127.0.0.1:1: connection refused; http://127.0.0.1:2: connection refused\n")
    }

    @Test func aClientMovesPastAnUnreachableServer() async throws {
        try await Self.withServer { server in
            for servers in ["http://127.0.0.1:1,\(server.url)", "\(server.url),http://127.0.0.1:1"] {
                let created = try await CapstanBinary.run(["ns", "create", "x\(servers.hasPrefix(server.url) ? 1 : 2)", "--server", servers])
                #expect(created.status == 0, "\(servers): \(created.stderr)")
                let listed = try await CapstanBinary.run(["ns", "ls", "--server", servers], environment: [:])
                #expect(listed.status == 0 && listed.stdout.contains("app"), "\(servers): \(listed.stderr)")
            }
            let fromEnvironment = try await CapstanBinary.run(
                ["config", "ls"], environment: ["CAPSTAN_ADDR": "http://127.0.0.1:1,\(server.url)"])
            #expect(fromEnvironment.status == 0, "\(fromEnvironment.stderr)")
        }
    }

    @Test(arguments: [
        (["--listen", "nonsense"], "--listen must be HOST:PORT"),
        (["--max-config-size", "lots"], "--max-config-size:"),
        (["--log-level", "loud"], "--log-level must be one of"),
        (["--rate-limit-api=-1"], "--rate-limit-api must be 0 or more"),
        (["--idle-timeout", "0s"], "--idle-timeout must be at least"),
        (["--root-token-file", "/no/such/token"], "--root-token-file: cannot read"),
        (["--store", "mysql://db:3306"], "store must be sqlite:PATH or etcd://HOST:PORT"),
        (["--store", "sqlite:"], "sqlite store needs a file path"),
        (["--store", "etcd://"], "etcd member must be HOST:PORT"),
        (["--store", "etcd://127.0.0.1:2379,"], "etcd member must be HOST:PORT, e.g. 127.0.0.1:2379; got nothing"),
        (["--store", "etcd://127.0.0.1:99999"], "etcd member port must be 1-65535"),
        (["--store", "etcd://bad host:2379"], "is not a host name or address"),
        (["--store-prefix", "/team-a"], "--store-prefix applies only to an etcd store"),
        (["--store", "etcd://127.0.0.1:2379", "--store-prefix", "team-a"], "store prefix must start with /"),
        (["--config", "/nonexistent/capstan.yaml"], "cannot read config file /nonexistent/capstan.yaml"),
        (["--compaction-interval", "often"], "--compaction-interval:"),
        (["--compaction-interval", "1ms"], "--compaction-interval must be at least 100ms"),
        (["--lock-ttl", "0"], "--lock-ttl must be at least 1 second"),
        (["--store-timeout", "5s"], "--store-timeout applies only to an etcd store"),
        (["--store", "etcd://127.0.0.1:2379", "--store-timeout", "soon"], "--store-timeout:"),
        (["--tls-cert", "/x.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-cert", "/no/such.pem", "--tls-key", "/no/such.key"], "--tls-cert: cannot read /no/such.pem"),
        (["--plain-http", "--tls-name", "capstan.example"], "--plain-http serves plain HTTP: --tls-cert, --tls-key and --tls-name do not apply"),
        (["--dev", "--tls-name", "capstan.example"], "--dev serves plain HTTP"),
        (["--tls-name", "two words"], "--tls-name must be a DNS name or an IP address"),
        (["--node-cert-ttl", "1s"], "--node-cert-ttl must be at least 5s"),
        (["--data-dir", "/dev/null"], "the data directory /dev/null is not a directory"),
        (["--data-dir", "/proc/capstan-data"], "cannot create the data directory /proc/capstan-data"),
    ])
    func badServerFlagsAreRefused(arguments: [String], message: String) async throws {
        let result = try await CapstanBinary.run(["server"] + arguments)
        #expect(result.status == 64, "\(arguments)")
        #expect(result.stderrLines.count == 1, "\(arguments): \(result.stderr)")
        #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
    }

    @Test(arguments: [
        ("listen: [oops\n", "is not valid YAML"),
        ("- listen\n", "must be a map of settings"),
        ("listen: 127.0.0.1:0\nport: 80\n", "unknown setting port"),
        ("history-retention: many\n", "history-retention must be a whole number; got many"),
        ("store:\n  etcd: x\n", "store must be a single value"),
        ("store: etcd://nowhere\n", "etcd member must be HOST:PORT"),
    ])
    func badServerConfigFilesAreRefused(content: String, message: String) async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-config")
        defer { directory.remove() }
        let file = directory.file("capstan.yaml")
        try Data(content.utf8).write(to: URL(fileURLWithPath: file))
        let result = try await CapstanBinary.run(["server", "--config", file])
        #expect(result.status == 64, "\(content)")
        #expect(result.stderrLines.count == 1, "\(content): \(result.stderr)")
        #expect(result.stderr.contains(message), "\(content): \(result.stderr)")
    }

    @Test func anUnreachableEtcdStopsTheServerWithOneLine() async throws {
        let port = try freePort()
        let result = try await CapstanBinary.run(["server", "--listen", "127.0.0.1:0", "--store", "etcd://127.0.0.1:\(port)"])
        #expect(result.status == 1)
        #expect(result.stderrLines.last?.hasPrefix("capstan: etcd at http://127.0.0.1:\(port) is unreachable") == true, "\(result.stderr)")
        #expect(result.stdout.isEmpty, "it claimed to listen: \(result.stdout)")
    }

    @Test func devServerPrintsItsBannerAndServes() async throws {
        // No token anywhere but what --dev generates, prints and saves for the CLI.
        let home = try TemporaryDirectory(prefix: "capstan-dev-banner")
        defer { home.remove() }
        let credentials = home.file("credentials.json")
        let (dataDirectory, server) = try await ServerProcess.with(
            dataDirectory: nil, extraArguments: ["--dev"], environment: ["CAPSTAN_ROOT_TOKEN": "", "CAPSTAN_CREDENTIALS": credentials]
        ) { server in
            _ = try await server.process.waitForLine { $0.contains("capstan config watch dev/") }
            #expect(server.process.output.contains("Capstan dev server listening on \(server.url)"))
            let tokenLine = try #require(server.process.output.split(separator: "\n").first { $0.hasPrefix("Root token: ") })
            let rootToken = String(tokenLine.dropFirst("Root token: ".count))
            #expect(rootToken.hasPrefix("cap_root_"))
            #expect(try String(contentsOfFile: credentials, encoding: .utf8).contains(rootToken))
            let dataLine = try #require(server.process.output.split(separator: "\n").first { $0.hasPrefix("Data (throwaway): ") })
            let dataDirectory = String(dataLine.dropFirst("Data (throwaway): ".count))
            #expect(dataDirectory.hasPrefix(FileManager.default.temporaryDirectory.path))
            #expect(FileManager.default.fileExists(atPath: dataDirectory + "/capstan.sqlite"))

            // The "try this" lines work as pasted: the local agent turns the config into a file.
            let lines = server.process.output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { $0.hasPrefix("capstan ") || $0.hasPrefix("printf ") || $0.hasPrefix("cat ") }
                .filter { !$0.contains("config watch") && !$0.hasPrefix("capstan agent") }
            #expect(lines.count == 7, "\(lines)")
            let binDirectory = URL(fileURLWithPath: CapstanBinary.path).deletingLastPathComponent().path
            let environment = ["PATH": "\(binDirectory):/usr/bin:/bin", "CAPSTAN_TOKEN": "", "CAPSTAN_CREDENTIALS": credentials]
            for line in lines where !line.hasPrefix("cat ") {
                let result = try await ChildProcess.runShell(line, environment: environment)
                #expect(result.status == 0, "\(line): \(result.stderr)")
            }
            let cat = try #require(lines.first { $0.hasPrefix("cat ") })
            var shown = ""
            try await eventually(timeout: .seconds(20), "the rendered file: \(shown)") {
                shown = try await ChildProcess.runShell(cat, environment: environment).stdout
                return shown == "listen 8080;\n"
            }
            let node = try await CapstanBinary.run(
                ["node", "ls", "--server", server.url], environment: ["CAPSTAN_TOKEN": "", "CAPSTAN_CREDENTIALS": credentials])
            #expect(node.stdout.contains("dev "), "\(node.stdout)")
            return (dataDirectory, server)
        }
        // Stopped by SIGTERM within the harness's grace: a clean exit, which removes the directory.
        let status = await server.process.exitStatus()
        #expect(status == 0, "the dev server did not exit cleanly (\(status)); the end of its log:\n\(server.process.errorOutput.suffix(3000))")
        #expect(!FileManager.default.fileExists(atPath: dataDirectory), "the dev data directory outlived the server")
    }
}
