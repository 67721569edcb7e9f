import ArgumentParser
import CapstanClient
import CapstanCore
import Foundation

struct LoginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Save a server and its token for later commands.",
        discussion: """
            Checks the token against the server, then saves both in the credentials file \
            ($CAPSTAN_CREDENTIALS, else ~/.config/capstan/credentials.json, mode 0600) and makes the server the \
            current one: later commands need neither --server nor --token. The token is read from --token, \
            $CAPSTAN_TOKEN or, when neither is set, one line of standard input.
            """
    )

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        var options = global
        if options.token == nil, GlobalOptions.environment("CAPSTAN_TOKEN") == nil {
            guard let line = readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces), !line.isEmpty else {
                throw ValidationError("no token: pass --token, set CAPSTAN_TOKEN or write it to standard input")
            }
            options.token = line
        }
        let client = try options.client()
        let caller = try await client.whoami()
        try Credentials.remember(server: client.server, token: client.token ?? "")
        try Output.print(caller, as: global.output) {
            "logged in to \(client.server) as \(caller.description.isEmpty ? "token \(caller.tokenID)" : caller.description) (role \(caller.role.name)); saved in \(Credentials.path)\n"
        }
    }
}
