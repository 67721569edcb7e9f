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
            $CAPSTAN_TOKEN or, when neither is set, one line of standard input. For an https:// server \
            whose certificate comes from its own CA, --ca-cert FILE or --ca-fingerprint (as the server \
            prints it) saves that CA too: the fingerprint is checked against the CA the server offers.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("The server's CA fingerprint (sha256:HEX, as the server prints it): fetch its CA and trust it if it matches.", valueName: "fingerprint"))
    var caFingerprint: String?

    func validate() throws {
        if let caFingerprint, !Self.isFingerprint(caFingerprint) {
            throw ValidationError("--ca-fingerprint must be sha256: and 64 hex digits, as the server prints it; got \(caFingerprint)")
        }
        if caFingerprint != nil, global.caCertificate != nil {
            throw ValidationError("--ca-fingerprint and --ca-cert both name the CA: give one")
        }
    }

    static func isFingerprint(_ text: String) -> Bool {
        let hex = text.lowercased().dropFirst("sha256:".count)
        return text.lowercased().hasPrefix("sha256:") && hex.count == 64 && hex.allSatisfy(\.isHexDigit)
    }

    func run() async throws {
        var options = global
        if options.token == nil, GlobalOptions.environment("CAPSTAN_TOKEN") == nil {
            guard let line = readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces), !line.isEmpty else {
                throw ValidationError("no token: pass --token, set CAPSTAN_TOKEN or write it to standard input")
            }
            options.token = line
        }
        var client = try options.client()
        var caPEM: String?
        if let path = options.caCertificate ?? GlobalOptions.environment("CAPSTAN_CA_CERT") {
            caPEM = try GlobalOptions.readCA(path)
        }
        if let caFingerprint {
            let pem = try await client.fetchCA(pinned: caFingerprint.lowercased())
            try client.trust(caCertificatePEM: pem)
            caPEM = pem
        }
        let caller = try await client.whoami()
        try Credentials.remember(server: client.server, token: client.token ?? "", caCertificate: caPEM)
        try Output.print(caller, as: global.output) {
            "logged in to \(client.server) as \(caller.description.isEmpty ? "token \(caller.tokenID)" : caller.description) (role \(caller.role.name)); saved in \(Credentials.path)\n"
        }
    }
}
