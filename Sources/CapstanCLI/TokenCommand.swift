import ArgumentParser
import CapstanCore
import Foundation

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Create, list and revoke API tokens.",
        discussion: """
            A token holds one role (see capstan role). Its secret is shown once, when it is created; the \
            server keeps only its hash. A token may hand out only roles that grant no more than its own.
            """,
        subcommands: [Create.self, List.self, Revoke.self, Print.self]
    )

    struct Print: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the token client commands send to the server.",
            discussion: """
                From --token, $CAPSTAN_TOKEN, or the credentials file's entry for the server. For other HTTP \
                clients: curl -H "Authorization: Bearer $(capstan token print)" ...
                """)

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let client = try global.client()
            guard let token = client.token else {
                throw ValidationError("no token for \(client.server): pass --token, set CAPSTAN_TOKEN or run capstan login")
            }
            print(token)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a token and print it (the only time it is shown).",
            discussion: "Example: capstan token create --role deployer --ttl 24h --description 'CI pipeline'")

        @OptionGroup var global: GlobalOptions
        @Option(help: "The role the token holds.") var role: String
        @Option(help: "Time to live, e.g. 24h or 30d (default: no expiry).") var ttl: String?
        @Option(help: "What the token is for; shown in listings and the audit log.") var description: String = ""

        func ttlSeconds() throws -> Int64? {
            guard let ttl else { return nil }
            let duration = try ServerCommand.duration(ttl, flag: "--ttl", minimum: .seconds(1))
            return duration.components.seconds
        }

        func validate() throws {
            _ = try ttlSeconds()
            do { try Role.validate(name: role) } catch { throw ValidationError("--role: \(error.message)") }
        }

        func run() async throws {
            let created = try await global.client().createToken(TokenSpec(role: role, description: description, ttlSeconds: try ttlSeconds()))
            try Output.print(created, as: global.output) {
                """
                \(created.token)
                token \(created.info.id) with role \(created.info.role)\(created.info.expiresAt.map { ", expires \(Output.time($0))" } ?? ""); \
                it is shown only now

                """
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List tokens (never their secrets).")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let tokens = try await global.client().tokens()
            try Output.print(tokens, as: global.output) {
                Output.table(
                    ["ID", "ROLE", "DESCRIPTION", "CREATED", "EXPIRES"],
                    tokens.map { token in
                        let expires = token.expiresAt.map { ($0 <= Date() ? "expired " : "") + Output.time($0) } ?? "never"
                        return [token.id, token.role, token.description.isEmpty ? "-" : token.description, Output.time(token.createdAt), expires]
                    })
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token: it stops working at once.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Token id, as capstan token ls shows it.") var id: String

        func run() async throws {
            try await global.client().revokeToken(id)
            if global.output == .table { print("revoked token \(id)") }
        }
    }
}
