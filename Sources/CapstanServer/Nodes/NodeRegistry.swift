import CapstanCore
import CapstanStore
import CapstanTLS
import Crypto
import Foundation
import Logging
import Synchronization

/// Nodes: enrollment, identity, certificates, labels and listing. Whether a node is alive is
/// `liveness`'s to say (`NodeLiveness`); listings show both.
public final class NodeRegistry: Sendable {
    let store: any KeyValueStore
    let records: NodeRecords
    /// Connections, heartbeats and status, on this replica.
    public let liveness: NodeLiveness
    private let joinToken: String
    private let logger: Logger

    /// With TLS: the CA that issues node certificates, and how long they last.
    let authority: CertificateAuthority?
    let certificateLifetime: Duration

    public init(
        store: any KeyValueStore, heartbeatInterval: Duration, joinToken: String, logger: Logger,
        authority: CertificateAuthority? = nil, certificateLifetime: Duration = .seconds(30 * 86_400)
    ) {
        self.store = store
        let records = NodeRecords(store: store)
        self.records = records
        self.liveness = NodeLiveness(records: records, heartbeatInterval: heartbeatInterval, logger: logger)
        self.joinToken = joinToken
        self.logger = logger
        self.authority = authority
        self.certificateLifetime = certificateLifetime
    }

    /// Whether agents must hold a client certificate from this installation's CA.
    var requiresCertificates: Bool { authority != nil }

    // MARK: Enrollment and identity

    /// Enrolls a node (or re-enrolls one that lost its identity): checks the join token and
    /// answers a fresh secret; the previous secret of the name stops working.
    public func enroll(_ request: EnrollRequest) async throws -> EnrollResponse {
        guard Self.constantTimeEqual(request.joinToken, joinToken) else {
            throw CapstanError(.unauthorized, "the join token is not this server's")
        }
        try NodeName.validate(request.name)
        // `/v1/nodes/metrics` is every node's metrics, not a node's.
        guard request.name != "metrics" else {
            throw CapstanError(.invalidArgument, "node name \"metrics\" is reserved; give the agent another --name")
        }
        try Labels.validate(request.labels)
        let secret = Self.randomSecret()
        let now = Date()
        var issued: IssuedCertificate?
        if let authority {
            guard let csr = request.certificateRequest else {
                throw CapstanError(
                    .invalidArgument, "this server speaks TLS: an enrollment must carry a certificate request (an agent older than the server?)")
            }
            do {
                issued = try authority.issueNodeCertificate(csrPEM: csr, name: request.name, validFor: certificateLifetime.timeInterval)
            } catch let error as TLSError {
                throw CapstanError(.invalidArgument, error.description)
            }
        }
        while true {
            let existing = try await store.range(RangeRequest(.key(StoreLayout.node(request.name)))).kvs.first
            // With certificates a node's name is its identity: a join token does not take over
            // one that is enrolled (it would get that node's templates and secrets).
            if existing != nil, requiresCertificates {
                throw CapstanError(
                    .conflict,
                    "node \(request.name.quoted) is enrolled already; to enroll it again (a new host, a lost identity), remove it first: capstan node rm \(request.name)")
            }
            var record: NodeRecord
            if let existing, var old = try? RecordCoding.decoder.decode(NodeRecord.self, from: existing.value) {
                old.secretHash = NodeRecord.hash(secret: secret)
                old.agentLabels = request.labels
                old.facts = request.facts
                old.certificateSerial = issued?.serial
                old.certificateExpires = issued?.notAfter
                old.previousCertificateSerial = nil
                record = old
            } else {
                record = NodeRecord(
                    name: request.name, id: UUID().uuidString.lowercased(), secretHash: NodeRecord.hash(secret: secret),
                    agentLabels: request.labels, serverLabels: [:], facts: request.facts, status: .unhealthy, statusSince: now,
                    lastSeen: nil, enrolledAt: now, certificateSerial: issued?.serial, certificateExpires: issued?.notAfter)
            }
            if try await records.write(record, expecting: existing?.modRevision ?? 0) != nil {
                logger.info(
                    "node enrolled", metadata: ["node": "\(record.name)", "node.id": "\(record.id)", "reenrolled": "\(existing != nil)"])
                return EnrollResponse(name: record.name, id: record.id, secret: secret, certificate: issued?.certificatePEM)
            }
        }
    }

    /// The node `name` if `secret` is its own; `unauthorized` otherwise (also for unknown names,
    /// so that a guess learns nothing).
    ///
    /// With TLS the connection must also carry the node's current client certificate: one the
    /// CA issued (checked in the handshake) whose serial is the one the node record holds. A
    /// certificate of a removed node, or one replaced by renewal, is refused.
    func authenticate(name: String, secret: String, certificateSerial: String?, forRenewal: Bool = false) async throws -> NodeRecord {
        guard let (record, _) = try await records.read(name), record.accepts(secret: secret) else {
            throw CapstanError(.unauthorized, "node \(name.quoted) is unknown or its secret is wrong: enroll it again with a join token")
        }
        if requiresCertificates {
            guard let certificateSerial else {
                throw CapstanError(.unauthorized, "node \(name.quoted) connected without its client certificate: this server speaks mutual TLS to agents")
            }
            let accepted = [record.certificateSerial] + (forRenewal ? [record.previousCertificateSerial] : [])
            guard accepted.contains(where: { $0.map { Self.constantTimeEqual($0, certificateSerial) } ?? false }) else {
                throw CapstanError(
                    .unauthorized, "node \(name.quoted) presented a client certificate that is no longer its own (revoked or renewed): enroll it again")
            }
        }
        return record
    }

    /// Issues node `name` a new certificate for the key of `request`; the node proved itself with
    /// its secret and current certificate. The certificate before it stops working.
    func renew(name: String, secret: String, certificateSerial: String?, request: CertificateRenewal) async throws -> RenewedCertificate {
        guard let authority else { throw CapstanError(.invalidArgument, "this server does not speak TLS: there is no certificate to renew") }
        while true {
            _ = try await authenticate(name: name, secret: secret, certificateSerial: certificateSerial, forRenewal: true)
            guard let (record, revision) = try await records.read(name) else { throw Self.notFound(name) }
            let issued: IssuedCertificate
            do {
                issued = try authority.issueNodeCertificate(
                    csrPEM: request.certificateRequest, name: name, validFor: certificateLifetime.timeInterval)
            } catch let error as TLSError {
                throw CapstanError(.invalidArgument, error.description)
            }
            var renewed = record
            // Renewing with the current certificate retires it; renewing again with the one
            // before (its answer was lost) keeps that one as the previous.
            if certificateSerial == record.certificateSerial { renewed.previousCertificateSerial = record.certificateSerial }
            renewed.certificateSerial = issued.serial
            renewed.certificateExpires = issued.notAfter
            if try await records.write(renewed, expecting: revision) != nil {
                logger.info("node certificate renewed", metadata: ["node": "\(name)", "expires": "\(issued.notAfter)"])
                return RenewedCertificate(certificate: issued.certificatePEM, expires: issued.notAfter)
            }
        }
    }

    // MARK: Listing and editing

    /// Every node the selector picks, by name.
    public func list(selector: Selector = .everything) async throws -> [NodeInfo] {
        let nodes = try await store.range(RangeRequest(.prefix(StoreLayout.nodes)))
        let present = Set(
            try await store.range(RangeRequest(.prefix(StoreLayout.presences), keysOnly: true)).kvs.map {
                String($0.key.dropFirst(StoreLayout.presences.count))
            })
        return nodes.kvs.compactMap { kv -> NodeInfo? in
            guard let record = try? RecordCoding.decoder.decode(NodeRecord.self, from: kv.value),
                selector.matches(labels: record.labels, name: record.name)
            else { return nil }
            return info(record, revision: kv.modRevision, present: present.contains(record.name))
        }
    }

    public func node(_ name: String) async throws -> NodeInfo {
        guard let (record, revision) = try await records.read(name) else { throw Self.notFound(name) }
        let present = try await store.get(StoreLayout.presence(name)) != nil
        return info(record, revision: revision, present: present)
    }

    /// Sets and removes server labels.
    public func label(_ name: String, _ change: NodeLabelChange) async throws -> NodeInfo {
        try Labels.validate(change.set)
        for key in change.remove { try Labels.validateKey(key) }
        try await records.update(name) { record in
            for key in change.remove { record.serverLabels.removeValue(forKey: key) }
            record.serverLabels.merge(change.set) { _, new in new }
        }
        return try await node(name)
    }

    /// Removes a node: its record and presence go, its secret stops working, and its agent's
    /// connection is closed, here at once and on another replica when its store watch sees the
    /// record go.
    public func remove(_ name: String) async throws {
        let result = try await store.txn(
            TxnRequest(success: [.delete(.key(StoreLayout.node(name))), .delete(.key(StoreLayout.presence(name)))]))
        guard case .delete(let deleted) = result.results.first, deleted > 0 else { throw Self.notFound(name) }
        liveness.forget(name)
        logger.info("node removed", metadata: ["node": "\(name)"])
    }

    /// A node's record was deleted, on this replica or another: its agent's connection here,
    /// if it has one, is closed (its secret no longer works, so it cannot come back as it was).
    func recordDeleted(_ name: String) {
        liveness.forget(name)
    }

    // MARK: Helpers

    private func info(_ record: NodeRecord, revision: Int64, present: Bool) -> NodeInfo {
        var info = record.info(revision: revision, connected: present)
        liveness.overlay(&info, present: present)
        return info
    }

    static func notFound(_ name: String) -> CapstanError { NodeRecords.notFound(name) }

    /// 256 random bits, base64url. Never starting with `-`: printed after `--join-token`, such a
    /// token would be read as an option (one start in 64 printed a join line that did not paste).
    static func randomSecret() -> String {
        while true {
            let secret = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
            if !secret.hasPrefix("-") { return secret }
        }
    }

    /// A fresh join token.
    public static func randomJoinToken() -> String { randomSecret() }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let (x, y) = (Array(a.utf8), Array(b.utf8))
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
