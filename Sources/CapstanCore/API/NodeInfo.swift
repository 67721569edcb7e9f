import Foundation

/// Whether a node's agent is heard from: `healthy` after 2 heartbeats in a row, `unhealthy`
/// after 3 missed ones (or when it was never heard from).
public enum NodeStatus: String, Codable, Sendable, Hashable {
    case healthy
    case unhealthy
}

/// What an agent reports about its host.
public struct NodeFacts: Codable, Sendable, Hashable {
    public var hostname: String
    public var os: String
    public var kernel: String
    public var arch: String
    public var cpuCount: Int
    public var memoryBytes: Int64
    public var addresses: [String]
    public var agentVersion: String
    public var bootTime: Date?

    public init(
        hostname: String, os: String, kernel: String, arch: String, cpuCount: Int, memoryBytes: Int64, addresses: [String],
        agentVersion: String, bootTime: Date?
    ) {
        self.hostname = hostname
        self.os = os
        self.kernel = kernel
        self.arch = arch
        self.cpuCount = cpuCount
        self.memoryBytes = memoryBytes
        self.addresses = addresses
        self.agentVersion = agentVersion
        self.bootTime = bootTime
    }
}

/// A node as the API shows it.
public struct NodeInfo: Codable, Sendable, Hashable {
    public var name: String
    /// Stable identity given at enrollment.
    public var id: String
    public var status: NodeStatus
    public var statusSince: Date
    /// Whether the agent holds a connection to a server replica now.
    public var connected: Bool
    /// The labels selectors see: the agent's, with the server's set on top.
    public var labels: [String: String]
    /// Labels the agent was started with (`capstan agent --label`).
    public var agentLabels: [String: String]
    /// Labels set on the server (`capstan node label`); they win over the agent's.
    public var serverLabels: [String: String]
    public var facts: NodeFacts
    public var agentVersion: String
    /// When the server last heard from the agent.
    public var lastSeen: Date?
    public var enrolledAt: Date
    /// Store revision of the node record.
    public var revision: Int64
    /// The templates that bind the node and how applying each went (in single-node reads).
    public var templates: [TemplateStatus.Node]?
    /// The health checks that pick the node, with the status its agent reported for each.
    public var checks: [String: CheckStatus]?

    /// Live (`healthy`) and no check `critical`: what `--only-healthy` asks for.
    public var isHealthy: Bool {
        status == .healthy && !(checks ?? [:]).values.contains(.critical)
    }

    public init(
        name: String, id: String, status: NodeStatus, statusSince: Date, connected: Bool, agentLabels: [String: String],
        serverLabels: [String: String], facts: NodeFacts, lastSeen: Date?, enrolledAt: Date, revision: Int64
    ) {
        self.name = name
        self.id = id
        self.status = status
        self.statusSince = statusSince
        self.connected = connected
        self.labels = agentLabels.merging(serverLabels) { _, server in server }
        self.agentLabels = agentLabels
        self.serverLabels = serverLabels
        self.facts = facts
        self.agentVersion = facts.agentVersion
        self.lastSeen = lastSeen
        self.enrolledAt = enrolledAt
        self.revision = revision
    }
}

public struct NodeList: Codable, Sendable, Hashable {
    public var items: [NodeInfo]

    public init(items: [NodeInfo]) {
        self.items = items
    }
}

/// Body of `POST /v1/nodes/{name}/labels`: labels to set and label keys to remove, on the server.
public struct NodeLabelChange: Codable, Sendable, Hashable {
    public var set: [String: String]
    public var remove: [String]

    public init(set: [String: String] = [:], remove: [String] = []) {
        self.set = set
        self.remove = remove
    }
}

/// Body of `POST /v1/agent/enroll`.
public struct EnrollRequest: Codable, Sendable, Hashable {
    public var joinToken: String
    public var name: String
    public var labels: [String: String]
    public var facts: NodeFacts
    /// A PKCS #10 request (PEM) for the node's client certificate; required when the server
    /// speaks TLS.
    public var certificateRequest: String?

    public init(joinToken: String, name: String, labels: [String: String], facts: NodeFacts, certificateRequest: String? = nil) {
        self.joinToken = joinToken
        self.name = name
        self.labels = labels
        self.facts = facts
        self.certificateRequest = certificateRequest
    }
}

/// Answer to an enrollment: the node's identity. The secret is shown only here; the server
/// keeps its hash.
public struct EnrollResponse: Codable, Sendable, Hashable {
    public var name: String
    public var id: String
    public var secret: String
    /// The node's client certificate (PEM), when the server speaks TLS.
    public var certificate: String?

    public init(name: String, id: String, secret: String, certificate: String? = nil) {
        self.name = name
        self.id = id
        self.secret = secret
        self.certificate = certificate
    }
}

/// `POST /v1/agent/renew`: a new client certificate for the node's (new) key, asked for over the
/// node's mutual-TLS connection before the current one expires.
public struct CertificateRenewal: Codable, Sendable, Hashable {
    public var certificateRequest: String

    public init(certificateRequest: String) {
        self.certificateRequest = certificateRequest
    }
}

/// The answer to a renewal: the new certificate (PEM); the one before it stops working.
public struct RenewedCertificate: Codable, Sendable, Hashable {
    public var certificate: String
    public var expires: Date

    public init(certificate: String, expires: Date) {
        self.certificate = certificate
        self.expires = expires
    }
}
