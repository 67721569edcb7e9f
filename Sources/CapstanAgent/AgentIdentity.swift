import Foundation
import Synchronization

/// The node identity an agent keeps in its data directory (`identity.json`, mode 0600).
public struct AgentIdentity: Codable, Sendable, Hashable {
    public var name: String
    public var id: String
    public var secret: String
    /// With TLS: the node's client certificate and key, and the CA the server is verified by (PEM).
    public var certificate: String?
    public var key: String?
    public var caCertificate: String?
    /// Whether the server's name is checked against its certificate (a CA given with
    /// `--ca-cert`, or a `cj1v-` token); otherwise any certificate from the pinned CA is the server.
    public var verifiesServerName: Bool?

    static func file(in directory: String) -> String {
        URL(fileURLWithPath: directory).appendingPathComponent("identity.json").path
    }

    static func load(from directory: String) throws -> AgentIdentity? {
        let path = file(in: directory)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(AgentIdentity.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw AgentError("\(path) is not a readable identity (\(error)); remove it to enroll again")
        }
    }

    func save(in directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try FileWriting.replace(Self.file(in: directory), with: try JSONEncoder().encode(self), mode: 0o600)
    }
}

public struct AgentError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The identity in use, replaced when the certificate is renewed.
final class CurrentIdentity: Sendable {
    private let value: Mutex<AgentIdentity>
    init(_ identity: AgentIdentity) { value = Mutex(identity) }
    var identity: AgentIdentity {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
