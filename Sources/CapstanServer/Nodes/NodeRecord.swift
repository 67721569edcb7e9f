import CapstanCore
import Crypto
import Foundation

/// A node as stored at `/capstan/nodes/NAME`.
struct NodeRecord: Codable, Sendable, Hashable {
    var name: String
    var id: String
    /// Hex SHA-256 of the node's secret; the secret itself is shown once, at enrollment.
    var secretHash: String
    var agentLabels: [String: String]
    var serverLabels: [String: String]
    var facts: NodeFacts
    var status: NodeStatus
    var statusSince: Date
    var lastSeen: Date?
    var enrolledAt: Date
    /// The serial (hex) of the client certificate the node holds now, when the server speaks
    /// TLS: the only one its connections are accepted with.
    var certificateSerial: String?
    var certificateExpires: Date?
    /// The certificate the last renewal replaced: accepted to renew again only, so that a
    /// renewal whose answer was lost does not lock the node out.
    var previousCertificateSerial: String?

    static func hash(secret: String) -> String {
        ConfigRecord.hex(SHA256.hash(data: Data(secret.utf8)))
    }

    /// Whether `secret` is this node's, compared in constant time.
    func accepts(secret: String) -> Bool {
        NodeRegistry.constantTimeEqual(Self.hash(secret: secret), secretHash)
    }

    func info(revision: Int64, connected: Bool) -> NodeInfo {
        NodeInfo(
            name: name, id: id, status: status, statusSince: statusSince, connected: connected, agentLabels: agentLabels,
            serverLabels: serverLabels, facts: facts, lastSeen: lastSeen, enrolledAt: enrolledAt, revision: revision)
    }

    /// The labels selectors see: the agent's, with the server's on top.
    var labels: [String: String] { agentLabels.merging(serverLabels) { _, server in server } }
}

