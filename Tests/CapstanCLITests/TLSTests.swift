import CapstanTLS
import CapstanTesting
import Foundation
import Testing

/// TLS outside `--dev`, with real server, agent and CLI processes, and curl as a TLS client of
/// its own: the CA and its fingerprint, pinned enrollment, mutual TLS, renewal and revocation.
@Suite("TLS and node identity", .timeLimit(.minutes(2)))
struct TLSTests {
    /// The fingerprint the server printed, and its pinned join token.
    static func printed(_ server: ServerProcess) async throws -> (fingerprint: String, joinToken: String) {
        // The last line the server prints at start.
        _ = try await server.process.waitForLine { $0.contains("agents join with") }
        let output = server.process.output
        let fingerprint = try #require(output.firstMatch(of: /CA fingerprint: (sha256:[0-9a-f]{64})/)?.output.1)
        let joinToken = try #require(output.firstMatch(of: /--join-token (cj1v?-[0-9a-f]{64}-\S+)/)?.output.1)
        return (String(fingerprint), String(joinToken))
    }

    @Test func theCLIReachesATLSServerOnlyThroughItsCA() async throws {
        let home = try TemporaryDirectory(prefix: "capstan-tls-cli")
        defer { home.remove() }
        try await ServerProcess.with(dataDirectory: home.file("data"), tls: true) { server in
            #expect(server.url.hasPrefix("https://127.0.0.1:"))
            let (fingerprint, _) = try await Self.printed(server)
            // The CA is left beside the data for the CLI, and it is the one printed.
            let caFile = home.file("data/ca.pem")
            let pem = try String(contentsOfFile: caFile, encoding: .utf8)
            #expect(try CertificateFacts(pem: pem).fingerprint == fingerprint)

            func capstan(_ arguments: [String], environment: [String: String] = [:], stdin: String? = nil) async throws -> CapstanBinary.Result {
                var environment = environment
                environment["CAPSTAN_CREDENTIALS"] = home.file("credentials.json")
                return try await CapstanBinary.run(arguments, stdin: stdin, environment: environment)
            }
            // Without the CA the server's certificate is not trusted, and the error says what to do.
            let untrusted = try await capstan(["ns", "ls", "--server", server.url])
            #expect(untrusted.status == 1)
            #expect(untrusted.stderr.contains("not trusted") && untrusted.stderr.contains("--ca-cert"), "\(untrusted.stderr)")
            #expect(try await capstan(["ns", "create", "prod", "--server", server.url, "--ca-cert", caFile]).status == 0)
            let listed = try await capstan(["ns", "ls", "--server", server.url], environment: ["CAPSTAN_CA_CERT": caFile])
            #expect(listed.status == 0, "\(listed.stderr)")
            #expect(listed.stdout.contains("prod"))
            // Plain HTTP to the TLS port is refused with a hint.
            let plain = try await capstan(["ns", "ls", "--server", server.url.replacingOccurrences(of: "https://", with: "http://")])
            #expect(plain.status == 1)
            #expect(plain.stderr.contains("use https://"), "\(plain.stderr)")

            // login checks a fingerprint against the CA the server offers and saves the CA.
            let wrong = "sha256:" + String(repeating: "0", count: 64)
            let refused = try await capstan(
                ["login", "--server", server.url, "--ca-fingerprint", wrong], environment: ["CAPSTAN_TOKEN": ""], stdin: TestAuth.rootToken + "\n")
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("not trusted"), "\(refused.stderr)")
            let login = try await capstan(
                ["login", "--server", server.url, "--ca-fingerprint", fingerprint], environment: ["CAPSTAN_TOKEN": ""],
                stdin: TestAuth.rootToken + "\n")
            #expect(login.status == 0, "\(login.stderr)")
            // Later commands need neither the server, the token nor the CA.
            let saved = try await capstan(["ns", "ls"], environment: ["CAPSTAN_TOKEN": ""])
            #expect(saved.status == 0, "\(saved.stderr)")
            #expect(saved.stdout.contains("prod"))
        }
    }

    @Test func agentsEnrollByThePinnedCAConnectOverMutualTLSRenewAndAreRevoked() async throws {
        let home = try TemporaryDirectory(prefix: "capstan-tls-agent")
        defer { home.remove() }
        try await ServerProcess.with(dataDirectory: home.file("data"), extraArguments: ["--node-cert-ttl", "18s"], tls: true) { server in
            let (_, joinToken) = try await Self.printed(server)
            let caFile = home.file("data/ca.pem")
            let secret = String(joinToken.dropFirst("cj1-".count + 65))
            func capstan(_ arguments: [String]) async throws -> CapstanBinary.Result {
                // Before a `--`, after which everything is the job's command.
                let options = ["--server", server.url, "--ca-cert", caFile]
                guard let dashes = arguments.firstIndex(of: "--") else { return try await CapstanBinary.run(arguments + options) }
                return try await CapstanBinary.run(Array(arguments[..<dashes]) + options + Array(arguments[dashes...]))
            }
            func agent(_ name: String, token: String?) -> [String] {
                var arguments = ["agent", "--server", server.url, "--data-dir", home.file("agent-\(name)"), "--name", name, "--log-level", "warning"]
                if let token { arguments += ["--join-token", token] }
                return arguments
            }

            // A token pinning another CA: nothing is sent, the agent says why and stops.
            let wrongPin = "cj1-" + String(repeating: "ab", count: 32) + "-" + secret
            let refused = try await CapstanBinary.run(agent("intruder", token: wrongPin))
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("pins sha256:abab"), "\(refused.stderr)")
            // A bare secret pins nothing: refused over https.
            let unpinned = try await CapstanBinary.run(agent("intruder", token: secret))
            #expect(unpinned.status != 0)
            #expect(unpinned.stderr.contains("pins no CA fingerprint"), "\(unpinned.stderr)")
            #expect(try await capstan(["node", "ls"]).stdout.contains("intruder") == false)

            // The right pin: enrolled with a certificate, connected over mutual TLS, runs a job.
            let web = try await AgentProcess.start(
                server: server.url, dataDirectory: home.file("agent-web-1"), name: "web-1", joinToken: joinToken)
            try await web.stopping {
                // Read and probed at once: the certificate is renewed about 12 s after it was
                // issued (a third of its 18 s left), and a loaded machine takes seconds per command.
                let first = try Identity(file: home.file("agent-web-1/identity.json"), in: home)
                // curl stands in for an agent: secret and certificate both needed, and only the current certificate.
                #expect(try await Self.probe(server, first, caFile: caFile) == "426")
                #expect(try await Self.probe(server, first, caFile: caFile, withCertificate: false) == "401")
                let job = try await capstan(["job", "run", "--", "echo", "over-mtls"])
                #expect(job.status == 0, "\(job.stderr) \(job.stdout)")
                #expect(job.stdout.contains("web-1: over-mtls"))
                _ = try await web.waitForLine(timeout: .seconds(20)) { $0 == "agent certificate renewed" }
                let renewed = try Identity(file: home.file("agent-web-1/identity.json"), in: home, suffix: "renewed")
                #expect(renewed.serial != first.serial)
                #expect(try await Self.probe(server, renewed, caFile: caFile) == "426")
                #expect(try await Self.probe(server, first, caFile: caFile) == "401", "a replaced certificate still works")
                // The join token does not take over an enrolled name.
                let takeover = try await CapstanBinary.run(
                    ["agent", "--server", server.url, "--data-dir", home.file("agent-takeover"), "--name", "web-1", "--join-token", joinToken])
                #expect(takeover.status != 0)
                #expect(takeover.stderr.contains("is enrolled already"), "\(takeover.stderr)")

                // A certificate from a CA of its own is refused in the handshake.
                let foreign = try Identity.foreign(name: "web-1", secret: renewed.secret, in: home)
                #expect(try await Self.probe(server, foreign, caFile: caFile) == "000")

                // Removed: the node's certificate stops working, and its agent, started again
                // without a join token, is refused and says so. (Stopped first: with its join
                // token, a running agent would enroll again at once.)
                await web.stop()
                // A renewal whose answer was lost: the certificate it replaced may ask again, but
                // connects no more. (With the agent stopped: curl renews the certificate it holds.)
                let held = try Identity(file: home.file("agent-web-1/identity.json"), in: home, suffix: "held")
                let csr = try NodeKey().signingRequest(name: "web-1")
                let body = String(decoding: try JSONEncoder().encode(["certificateRequest": csr]), as: UTF8.self)
                try body.write(toFile: home.file("renewal.json"), atomically: true, encoding: .utf8)
                for attempt in ["lost", "asked again"] {
                    let renewal = try await ChildProcess.runShell(
                        "curl -s -o /dev/null -w '%{http_code}' --cacert \(caFile) --cert \(held.certificate) --key \(held.key) "
                            + "-H 'X-Capstan-Node: web-1' -H 'Authorization: Bearer \(held.secret)' -H 'Content-Type: application/json' "
                            + "--data @\(home.file("renewal.json")) \(server.url)/v1/agent/renew",
                        environment: ProcessInfo.processInfo.environment)
                    #expect(renewal.stdout == "200", "renewal \(attempt)")
                }
                #expect(try await Self.probe(server, held, caFile: caFile) == "401")

                #expect(try await capstan(["node", "rm", "web-1"]).status == 0)
                #expect(try await Self.probe(server, held, caFile: caFile) == "401")
            }
            let restarted = try await CapstanBinary.run(agent("web-1", token: nil))
            #expect(restarted.status != 0)
            #expect(restarted.stderr.contains("refuses node web-1's identity"), "\(restarted.stderr)")
        }
    }

    /// A certificate of the operator's own: served as given, its chain's last certificate is
    /// the one printed, pinned and trusted, and agents still get node certificates.
    @Test func aGivenCertificateIsServedAndPinned() async throws {
        let home = try TemporaryDirectory(prefix: "capstan-tls-given")
        defer { home.remove() }
        let corporate = try CertificateAuthority.create()
        let (leaf, key) = try corporate.issueServerCertificate(names: ["localhost", "127.0.0.1"], validFor: 3600)
        try (leaf + "\n" + corporate.certificatePEM + "\n").write(toFile: home.file("chain.pem"), atomically: true, encoding: .utf8)
        try key.write(toFile: home.file("key.pem"), atomically: true, encoding: .utf8)
        try corporate.certificatePEM.write(toFile: home.file("corporate.pem"), atomically: true, encoding: .utf8)
        try await ServerProcess.with(
            dataDirectory: home.file("data"), extraArguments: ["--tls-cert", home.file("chain.pem"), "--tls-key", home.file("key.pem")], tls: true
        ) { server in
            let (fingerprint, joinToken) = try await Self.printed(server)
            #expect(fingerprint == corporate.fingerprint)
            // The CA may certify other services too: the token says to check the server's name.
            #expect(joinToken.hasPrefix("cj1v-"))
            let listed = try await CapstanBinary.run(["ns", "ls", "--server", server.url, "--ca-cert", home.file("corporate.pem")])
            #expect(listed.status == 0, "\(listed.stderr)")
            // By a name the certificate holds, the agent enrolls and connects.
            let byName = server.url.replacingOccurrences(of: "127.0.0.1", with: "localhost")
            let agent = try await AgentProcess.start(server: byName, dataDirectory: home.file("agent"), name: "db-1", joinToken: joinToken)
            await agent.stop()
            // A certificate from the same CA for another name is not the server.
            let (otherLeaf, otherKey) = try corporate.issueServerCertificate(names: ["intranet.example"], validFor: 3600)
            try (otherLeaf + "\n" + corporate.certificatePEM + "\n").write(toFile: home.file("other.pem"), atomically: true, encoding: .utf8)
            try otherKey.write(toFile: home.file("other.key"), atomically: true, encoding: .utf8)
            try await ServerProcess.with(
                dataDirectory: home.file("other-data"), extraArguments: ["--tls-cert", home.file("other.pem"), "--tls-key", home.file("other.key")],
                tls: true
            ) { impostor in
                let (_, token) = try await Self.printed(impostor)
                let refused = try await CapstanBinary.run(
                    ["agent", "--server", impostor.url.replacingOccurrences(of: "127.0.0.1", with: "localhost"), "--join-token", token,
                     "--data-dir", home.file("agent-2"), "--name", "db-2", "--log-level", "warning"], timeout: .seconds(20))
                #expect(refused.status != 0)
                #expect(refused.stderr.contains("is not the server the join token names"), "\(refused.stderr)")
            }
        }
    }

    /// An agent's credentials as files curl can use.
    struct Identity {
        var secret: String
        var serial: String
        var certificate: String
        var key: String

        init(file: String, in home: TemporaryDirectory, suffix: String = "first") throws {
            struct Stored: Decodable {
                var secret: String
                var certificate: String?
                var key: String?
            }
            let stored = try JSONDecoder().decode(Stored.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
            let certificatePEM = try #require(stored.certificate)
            try self.init(secret: stored.secret, certificatePEM: certificatePEM, keyPEM: try #require(stored.key), in: home, suffix: suffix)
        }

        init(secret: String, certificatePEM: String, keyPEM: String, in home: TemporaryDirectory, suffix: String) throws {
            self.secret = secret
            serial = try CertificateFacts(pem: certificatePEM).serial
            certificate = home.file("cert-\(suffix).pem")
            key = home.file("key-\(suffix).pem")
            try certificatePEM.write(toFile: certificate, atomically: true, encoding: .utf8)
            try keyPEM.write(toFile: key, atomically: true, encoding: .utf8)
        }

        /// A certificate for `name` from a CA that is not the server's.
        static func foreign(name: String, secret: String, in home: TemporaryDirectory) throws -> Identity {
            let authority = try CertificateAuthority.create()
            let key = try NodeKey()
            let issued = try authority.issueNodeCertificate(csrPEM: try key.signingRequest(name: name), name: name, validFor: 3600)
            return try Identity(secret: secret, certificatePEM: issued.certificatePEM, keyPEM: key.keyPEM, in: home, suffix: "foreign")
        }
    }

    /// The status of a plain (not upgraded) agent connection request from curl: 426 when the
    /// credentials are good, 401 when not, 000 when the TLS handshake failed.
    static func probe(_ server: ServerProcess, _ identity: Identity, caFile: String, withCertificate: Bool = true) async throws -> String {
        var command = "curl -s -o /dev/null -w '%{http_code}' --cacert \(caFile)"
        if withCertificate { command += " --cert \(identity.certificate) --key \(identity.key)" }
        command += " -H 'X-Capstan-Node: web-1' -H 'Authorization: Bearer \(identity.secret)' \(server.url)/v1/agent/connect"
        let result = try await ChildProcess.runShell(command, environment: ProcessInfo.processInfo.environment)
        return result.stdout
    }
}
