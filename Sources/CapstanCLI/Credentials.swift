import ArgumentParser
import CapstanCore
import Foundation

/// The CLI's credentials file: a token (and later a CA certificate) per server, and the server
/// used when none is named. `capstan login` and `capstan server --dev` write it; mode 0600.
///
/// At `$CAPSTAN_CREDENTIALS`, else `$XDG_CONFIG_HOME/capstan/credentials.json`, else
/// `~/.config/capstan/credentials.json`.
struct Credentials: Codable, Sendable {
    struct Entry: Codable, Sendable {
        var token: String?
        /// PEM of the CA that signs the server's certificate.
        var caCertificate: String?
    }

    /// The server client commands talk to when neither --server nor CAPSTAN_ADDR names one.
    var current: String?
    var servers: [String: Entry] = [:]

    static var path: String {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["CAPSTAN_CREDENTIALS"], !path.isEmpty { return path }
        let base =
            environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()) + "/.config"
        return base + "/capstan/credentials.json"
    }

    /// The file's contents; empty when there is none. A file that cannot be read is an error, not
    /// silently ignored.
    static func load() throws -> Credentials {
        let path = Self.path
        guard FileManager.default.fileExists(atPath: path) else { return Credentials() }
        do {
            return try JSONDecoder().decode(Credentials.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw ValidationError("cannot read the credentials file \(path): \(error.localizedDescription); remove it or run capstan login")
        }
    }

    /// Writes the file (0600, in a 0700 directory) whole: through a temporary file renamed over it.
    func save() throws {
        let url = URL(fileURLWithPath: Self.path)
        let directory = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            try PrivateFile.replace(url.path, with: try encoder.encode(self))
        } catch let error as CapstanError {
            throw ValidationError("cannot write the credentials file \(url.path): \(error.message)")
        }
    }

    /// Records `token` for `server` and makes it the current server.
    static func remember(server: String, token: String, caCertificate: String? = nil) throws {
        var credentials = try load()
        credentials.servers[server, default: Entry()].token = token
        if let caCertificate { credentials.servers[server, default: Entry()].caCertificate = caCertificate }
        credentials.current = server
        try credentials.save()
    }
}
