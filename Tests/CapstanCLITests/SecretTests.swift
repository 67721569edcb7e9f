import CapstanTesting
import Foundation
import Testing

/// Secrets with real server, agent and CLI processes: encrypted at rest, readable only with
/// read-secret, absent from everything else, rotated, and rendered into templates only over
/// mutual TLS.
@Suite("Secrets", .timeLimit(.minutes(2)))
struct SecretTests {
    static let plaintext = "hunter2-S3CRET-value"

    @Test func aSecretIsEncryptedAtRestReadOnlyWithReadSecretAndRotated() async throws {
        let home = try TemporaryDirectory(prefix: "capstan-secrets")
        defer { home.remove() }
        let data = home.file("data")
        func capstan(_ server: ServerProcess, _ arguments: [String], token: String = TestAuth.rootToken, stdin: String? = nil)
            async throws -> CapstanBinary.Result
        {
            try await CapstanBinary.run(arguments + ["--server", server.url], stdin: stdin, environment: ["CAPSTAN_TOKEN": token])
        }
        var serverLog = ""
        try await ServerProcess.with(dataDirectory: data, extraArguments: ["--log-level", "debug"]) { server in
            #expect(try await capstan(server, ["ns", "create", "prod"]).status == 0)
            let put = try await capstan(server, ["config", "put", "prod/db/password", "--secret"], stdin: Self.plaintext)
            #expect(put.status == 0, "\(put.stderr)")
            #expect(put.stdout.contains("secret, encrypted"))
            #expect(try await capstan(server, ["config", "put", "prod/app.yaml"], stdin: "port: 1\n").status == 0)
            let get = try await capstan(server, ["config", "get", "prod/db/password"])
            #expect(get.stdout == Self.plaintext)

            // read is not enough for a secret's content; read-secret is.
            let reader = try await Self.token(server, rules: ["config:prod/:read"], capstan: capstan)
            #expect(try await capstan(server, ["config", "get", "prod/app.yaml"], token: reader).status == 0)
            let refused = try await capstan(server, ["config", "get", "prod/db/password"], token: reader)
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("may not read-secret"), "\(refused.stderr)")
            #expect(!refused.stderr.contains(Self.plaintext))
            let trusted = try await Self.token(server, rules: ["config:prod/db/:read,read-secret"], capstan: capstan)
            #expect(try await capstan(server, ["config", "get", "prod/db/password"], token: trusted).stdout == Self.plaintext)

            // Nowhere else in clear: listings, history, diffs, watches, audit.
            let listed = try await capstan(server, ["config", "ls", "prod", "-o", "json"])
            #expect(listed.stdout.contains("\"secret\" : true"), "\(listed.stdout)")
            let history = try await capstan(server, ["config", "history", "prod/db/password", "-o", "json"])
            let revision = try #require(history.stdout.firstMatch(of: /"revision" : (\d+)/)?.output.1)
            let diff = try await capstan(server, ["config", "diff", "prod/db/password", String(revision)])
            #expect(diff.status == 1)
            #expect(diff.stderr.contains("secrets are not diffed"), "\(diff.stderr)")
            let watch = try await capstan(server, ["config", "watch", "prod/", "--from", "1", "--count", "2", "-o", "json"])
            #expect(watch.stdout.contains("\"secret\":true"), "\(watch.stdout)")
            let audit = try await capstan(server, ["audit", "ls", "--limit", "1000", "-o", "json"])
            #expect(audit.stdout.contains("/v1/config/prod/db/password?secret=true"))
            let hash = try await Self.sha256(Self.plaintext)
            #expect(hash.count == 64)
            for output in [listed.stdout, history.stdout, diff.stdout, watch.stdout, audit.stdout] {
                #expect(!output.contains(Self.plaintext))
                #expect(!output.contains(hash), "a secret's hash can be checked against guesses")
            }
            // A write that forgets --secret does not put the next value in clear.
            let slip = try await capstan(server, ["config", "put", "prod/db/password"], stdin: "oops-in-clear")
            #expect(slip.status == 1)
            #expect(slip.stderr.contains("is a secret: write it with --secret"), "\(slip.stderr)")
            // Rollback re-seals the earlier version without showing it.
            #expect(try await capstan(server, ["config", "put", "prod/db/password", "--secret"], stdin: "second-\(Self.plaintext)").status == 0)
            let rollback = try await capstan(server, ["config", "rollback", "prod/db/password"])
            #expect(rollback.stdout.contains("secret, encrypted"), "\(rollback.stdout) \(rollback.stderr)")
            #expect(try await capstan(server, ["config", "get", "prod/db/password"]).stdout == Self.plaintext)
            serverLog = server.process.errorOutput + server.process.output
        }
        // Not in the logs (at debug level), nor in the store's files.
        #expect(serverLog.contains("debug") || serverLog.contains("info"), "the server logged nothing at debug level")
        #expect(!serverLog.contains(Self.plaintext))
        for file in try FileManager.default.contentsOfDirectory(atPath: data) where file.hasPrefix("capstan.sqlite") {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: home.file("data/\(file)")))
            #expect(bytes.range(of: Data(Self.plaintext.utf8)) == nil, "\(file) holds the secret in clear")
        }
        let keyFile = home.file("data/secret.key")
        #expect(try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? Int == 0o600)

        // Rotation: the servers stopped, every data key rewrapped under a new key, the old key gone.
        let before = try String(contentsOfFile: keyFile, encoding: .utf8)
        let rotated = try await CapstanBinary.run(["server", "rotate-key", "--data-dir", data])
        #expect(rotated.status == 0, "\(rotated.stderr)")
        #expect(rotated.stdout.contains("rewrapped 3 data keys and re-sealed the join token under secret key"), "\(rotated.stdout)")
        let after = try String(contentsOfFile: keyFile, encoding: .utf8)
        #expect(after != before)
        #expect(after.split(separator: "\n").filter { !$0.hasPrefix("#") }.count == 1)
        try await ServerProcess.with(dataDirectory: data) { server in
            let read = try await capstan(server, ["config", "get", "prod/db/password"])
            #expect(read.stdout == Self.plaintext, "\(read.stderr)")
        }
        // With the old key back in place, nothing sealed opens (the join token first, so the
        // server does not start): the rotation took.
        try before.write(toFile: keyFile, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyFile)
        let stale = try await CapstanBinary.run(["server", "--listen", "127.0.0.1:0", "--plain-http", "--data-dir", data], timeout: .seconds(20))
        #expect(stale.status == 1)
        #expect(stale.stderr.contains("the join token in the store is sealed under secret key"), "\(stale.stderr)")
        #expect(stale.stderr.contains("which this server does not hold"), "\(stale.stderr)")
    }

    @Test func badSecretInputIsRefused() async throws {
        let home = try TemporaryDirectory(prefix: "capstan-secrets-bad")
        defer { home.remove() }
        // A key that is not 32 bytes of base64 stops the server with one line.
        let badKey = try await CapstanBinary.run(
            ["server", "--listen", "127.0.0.1:0", "--plain-http", "--data-dir", home.file("data")], environment: ["CAPSTAN_SECRET_KEY": "short"])
        #expect(badKey.status == 64)
        #expect(badKey.stderr.contains("CAPSTAN_SECRET_KEY line 1: a secret key is 32 bytes in base64"), "\(badKey.stderr)")
        // A key file others can read is refused.
        try "# key\n\(Data(repeating: 7, count: 32).base64EncodedString())\n".write(toFile: home.file("open.key"), atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: home.file("open.key"))
        let open = try await CapstanBinary.run(
            ["server", "--listen", "127.0.0.1:0", "--plain-http", "--data-dir", home.file("data"), "--secret-key-file", home.file("open.key")])
        #expect(open.status == 64)
        #expect(open.stderr.contains("is readable by others"), "\(open.stderr)")
        let noStore = try await CapstanBinary.run(["server", "rotate-key", "--data-dir", home.file("nowhere")])
        #expect(noStore.status == 64)
        #expect(noStore.stderr.contains("no store at"), "\(noStore.stderr)")

        try await ServerProcess.with(dataDirectory: home.file("data")) { server in
            let environment = ["CAPSTAN_TOKEN": TestAuth.rootToken]
            _ = try await CapstanBinary.run(["ns", "create", "prod", "--server", server.url], environment: environment)
            let template = try await CapstanBinary.run(
                ["template", "put", "t", "--source", "prod/t", "--dest", "/tmp/t", "--secret", "not a key", "--server", server.url],
                environment: environment)
            #expect(template.status == 1)
            #expect(template.stderr.contains("--secret not a key"), "\(template.stderr)")
            let maybe = try await ChildProcess.runShell(
                "curl -s -w ' %{http_code}' -X PUT --data x -H 'Authorization: Bearer \(TestAuth.rootToken)' '\(server.url)/v1/config/prod/x?secret=maybe'",
                environment: ProcessInfo.processInfo.environment)
            #expect(maybe.stdout.hasSuffix(" 400"), "\(maybe.stdout)")
            #expect(maybe.stdout.contains("secret must be true or false"))
        }
    }

    /// A template declaring a secret: rendered into the file (0600) on a node over mutual TLS;
    /// refused on a server that speaks plain HTTP.
    @Test func templatesGetSecretsOnlyOverMutualTLS() async throws {
        let home = try TemporaryDirectory(prefix: "capstan-secret-templates")
        defer { home.remove() }
        let output = home.file("out")
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        for tls in [true, false] {
            let data = home.file("data-\(tls)")
            try await ServerProcess.with(dataDirectory: data, tls: tls) { server in
                var environment = ["CAPSTAN_TOKEN": TestAuth.rootToken]
                if tls { environment["CAPSTAN_CA_CERT"] = home.file("data-\(tls)/ca.pem") }
                func capstan(_ arguments: [String], stdin: String? = nil) async throws -> CapstanBinary.Result {
                    try await CapstanBinary.run(arguments + ["--server", server.url], stdin: stdin, environment: environment)
                }
                let joinLine = try await server.process.waitForLine { $0.contains("agents join with") }
                let joinToken = try #require(joinLine.firstMatch(of: /--join-token (\S+)/)?.output.1)
                // The agent claims role=db for itself; a template with secrets binds by what the server says.
                let agent = try await AgentProcess.start(
                    server: server.url, dataDirectory: home.file("agent-\(tls)"), name: "db-1", joinToken: String(joinToken),
                    labels: ["role=db"], allowedPaths: [output])
                try await agent.stopping {
                    #expect(try await capstan(["ns", "create", "prod"]).status == 0)
                    #expect(try await capstan(["config", "put", "prod/db/password", "--secret"], stdin: Self.plaintext).status == 0)
                    let source = "user=app\npassword={{ secret \"prod/db/password\" }}\n"
                    #expect(try await capstan(["config", "put", "prod/db.tmpl"], stdin: source).status == 0)
                    let dest = "\(output)/db-\(tls).conf"
                    let put = try await capstan(
                        ["template", "put", "db", "--selector", "role=db", "--source", "prod/db.tmpl", "--dest", dest, "--secret", "prod/db/password"])
                    #expect(put.status == 0, "\(put.stderr)")
                    let unbound = try await capstan(["template", "status", "db"])
                    #expect(unbound.stdout.contains("0 applied, 0 failed, 0 pending"), "\(unbound.stdout)")
                    #expect(try await capstan(["node", "label", "db-1", "role=db"]).status == 0)
                    if tls {
                        _ = try await agent.waitForLine { $0 == "agent template db applied" }
                        #expect(try String(contentsOfFile: dest, encoding: .utf8) == "user=app\npassword=\(Self.plaintext)\n")
                        #expect(try FileManager.default.attributesOfItem(atPath: dest)[.posixPermissions] as? Int == 0o600)
                        // A check that prints the (changed) file: the report shows no secret.
                        let checked = try await capstan(
                            ["template", "put", "db", "--selector", "role=db", "--source", "prod/db.tmpl", "--dest", dest, "--secret", "prod/db/password",
                             "--shell", "--check", "cat {{src}}; exit 1"])
                        #expect(checked.status == 0, "\(checked.stderr)")
                        #expect(try await capstan(["config", "put", "prod/db.tmpl"], stdin: source + "# v2\n").status == 0)
                        try await eventually(interval: .milliseconds(250), "the failed check reported") {
                            try await capstan(["template", "status", "db"]).stdout.contains("[secret]")
                        }
                        #expect(try await !capstan(["template", "status", "db", "-o", "json"]).stdout.contains(Self.plaintext))
                        #expect(try await capstan(
                            ["template", "put", "db", "--selector", "role=db", "--source", "prod/db.tmpl", "--dest", dest, "--secret", "prod/db/password"]
                        ).status == 0)
                        // An undeclared reference is not resolved.
                        #expect(try await capstan(["config", "put", "prod/db.tmpl"], stdin: "x={{secret \"prod/other\"}}\n").status == 0)
                        try await eventually(interval: .milliseconds(250), "the undeclared secret reported") {
                            try await capstan(["template", "status", "db"]).stdout.contains("does not declare (template put --secret prod/other)")
                        }
                    } else {
                        try await eventually(interval: .milliseconds(250), "the refusal reported") {
                            try await capstan(["template", "status", "db"]).stdout.contains("only over mutual TLS")
                        }
                        #expect(!FileManager.default.fileExists(atPath: dest))
                    }
                }
            }
        }
    }

    static func token(
        _ server: ServerProcess, rules: [String],
        capstan: (ServerProcess, [String], String, String?) async throws -> CapstanBinary.Result
    ) async throws -> String {
        let name = "r\(UInt32.random(in: 0...UInt32.max))"
        let role = try await capstan(server, ["role", "put", name] + rules.flatMap { ["--rule", $0] }, TestAuth.rootToken, nil)
        #expect(role.status == 0, "\(role.stderr)")
        let created = try await capstan(server, ["token", "create", "--role", name], TestAuth.rootToken, nil)
        return try #require(created.stdout.split(separator: "\n").first.map(String.init))
    }

    /// Through the system's sha256sum: the test does not share the server's hashing code.
    static func sha256(_ text: String) async throws -> String {
        let result = try await ChildProcess.runShell("printf %s '\(text)' | sha256sum", environment: ProcessInfo.processInfo.environment)
        return result.stdout.split(separator: " ").first.map(String.init) ?? ""
    }
}
