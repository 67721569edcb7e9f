import CapstanTesting
import Foundation
import Testing

/// `capstan token`, `role`, `login` and `audit` against a real server, as a user runs them.
@Suite("Access commands", .timeLimit(.minutes(2)))
struct AccessCommandTests {
    @Test func tokensRolesLoginAndAuditFromTheCLI() async throws {
        let home = try TemporaryDirectory(prefix: "capstan-access-cli")
        defer { home.remove() }
        try await ServerProcess.with(dataDirectory: home.file("data")) { server in
            func capstan(_ arguments: [String], token: String? = nil, stdin: String? = nil) async throws -> CapstanBinary.Result {
                var environment = ["CAPSTAN_CREDENTIALS": home.file("credentials.json")]
                if let token { environment["CAPSTAN_TOKEN"] = token }
                return try await CapstanBinary.run(arguments + ["--server", server.url], stdin: stdin, environment: environment)
            }
            #expect(try await capstan(["ns", "create", "prod"]).status == 0)
            let role = try await capstan(["role", "put", "order-dev", "--rule", "config:prod/order-service/:read,write", "--description", "order team"])
            #expect(role.status == 0, "\(role.stderr)")
            let created = try await capstan(["token", "create", "--role", "order-dev", "--ttl", "24h", "--description", "ci"])
            #expect(created.status == 0, "\(created.stderr)")
            let token = try #require(created.stdout.split(separator: "\n").first.map(String.init))
            #expect(token.hasPrefix("cap_"))

            // Log in with the new token (read from standard input): later commands need nothing else.
            let login = try await capstan(["login"], token: "", stdin: token + "\n")
            #expect(login.status == 0, "\(login.stderr)")
            #expect(login.stdout.contains("role order-dev"))
            let mode = try FileManager.default.attributesOfItem(atPath: home.file("credentials.json"))[.posixPermissions] as? Int
            #expect(mode == 0o600)
            let put = try await capstan(["config", "put", "prod/order-service/app.yaml"], token: "", stdin: "port: 1\n")
            #expect(put.status == 0, "\(put.stderr)")
            let denied = try await capstan(["config", "put", "prod/billing/app.yaml"], token: "", stdin: "port: 1\n")
            #expect(denied.status == 1)
            #expect(denied.stderr.contains("forbidden"), "\(denied.stderr)")
            #expect(denied.stderrLines.count == 1)
            let printed = try await capstan(["token", "print"], token: "")
            #expect(printed.stdout == token + "\n")

            // No token at all: one line that says what to do.
            let anonymous = try await CapstanBinary.run(
                ["config", "ls", "--server", server.url], environment: ["CAPSTAN_TOKEN": "", "CAPSTAN_CREDENTIALS": home.file("none.json")])
            #expect(anonymous.status == 1)
            #expect(anonymous.stderr.contains("needs a token"), "\(anonymous.stderr)")

            let listed = try await capstan(["token", "ls"])
            #expect(listed.stdout.contains("order-dev"))
            #expect(!listed.stdout.contains(token))
            let id = try #require(token.split(separator: "_").dropFirst().first.map(String.init))
            #expect(try await capstan(["token", "revoke", id]).status == 0)
            let revoked = try await capstan(["config", "ls"], token: "")
            #expect(revoked.status == 1)
            #expect(revoked.stderr.contains("unauthorized"), "\(revoked.stderr)")

            let audit = try await capstan(["audit", "ls", "--since", "1h", "--resource", "/v1/config/prod/"])
            #expect(audit.status == 0, "\(audit.stderr)")
            #expect(audit.stdout.contains("ci (\(id))"))
            #expect(audit.stdout.contains("403 denied"))
            let verify = try await capstan(["audit", "verify"])
            #expect(verify.status == 0)
            #expect(verify.stdout.contains("audit chain intact"))

            let badRule = try await capstan(["role", "put", "x", "--rule", "config:prod/:fly"])
            #expect(badRule.status == 64)
            #expect(badRule.stderr.contains("unknown action"))
            let badTTL = try await capstan(["token", "create", "--role", "order-dev", "--ttl", "soon"])
            #expect(badTTL.status == 64)
        }
    }
}
