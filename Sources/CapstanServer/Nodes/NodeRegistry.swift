import CapstanCore
import CapstanStore
import CapstanTLS
import Crypto
import Foundation
import Logging
import Synchronization

/// Nodes: enrollment, identity, labels, and liveness from their agents' heartbeats.
///
/// Liveness is kept in memory by the replica an agent is connected to: each heartbeat counts,
/// a node turns `healthy` after 2 in a row and `unhealthy` when none came for 3 intervals; only
/// these transitions, connects and disconnects are written to the store (with the last-seen
/// time), so a heartbeat costs no write: 10,000 nodes would otherwise cost hundreds of writes a
/// second. The replica holding a node's connection answers its exact last-seen time; another
/// replica answers the stored one, and `connected` (the presence key) says the node is there. While connected, a node holds a presence key under this
/// replica's store lease (`/capstan/presence/NAME`). A node that is `healthy` in the store but
/// holds no presence key anywhere (its replica died, or it disconnected while another replica
/// was down) is marked `unhealthy` by whichever replica notices, after the same 3 intervals.
public final class NodeRegistry: Sendable {
    let store: any KeyValueStore
    public let heartbeatInterval: Duration
    private let joinToken: String
    private let logger: Logger
    private let replicaID = UUID().uuidString
    private let live = Mutex<[String: LiveNode]>([:])
    private let presenceLease = Mutex<LeaseID?>(nil)
    private let presenceGrant = Mutex<Task<LeaseID, any Error>?>(nil)
    private let nextConnection = Atomic<UInt64>(1)
    /// Closes a node's connection on this replica (after `node rm`); set by the agent gateway.
    let disconnectHandlers = Mutex<[UInt64: @Sendable () -> Void]>([:])

    /// What this replica knows of a node it hears from (or watches for silence).
    struct LiveNode {
        var connection: UInt64?
        var lastHeartbeat: ContinuousClock.Instant
        var lastSeen: Date
        var consecutiveHeartbeats: Int
        var status: NodeStatus
    }

    /// Heartbeats in a row that make a node healthy, and intervals of silence that make it unhealthy.
    static let heartbeatsToRecover = 2
    static let missedToFail = 3

    /// With TLS: the CA that issues node certificates, and how long they last.
    let authority: CertificateAuthority?
    let certificateLifetime: Duration

    public init(
        store: any KeyValueStore, heartbeatInterval: Duration, joinToken: String, logger: Logger,
        authority: CertificateAuthority? = nil, certificateLifetime: Duration = .seconds(30 * 86_400)
    ) {
        self.store = store
        self.heartbeatInterval = heartbeatInterval
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
            if try await write(record, expecting: existing?.modRevision ?? 0) != nil {
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
        guard let (record, _) = try await read(name), record.accepts(secret: secret) else {
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
            guard let (record, revision) = try await read(name) else { throw Self.notFound(name) }
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
            if try await write(renewed, expecting: revision) != nil {
                logger.info("node certificate renewed", metadata: ["node": "\(name)", "expires": "\(issued.notAfter)"])
                return RenewedCertificate(certificate: issued.certificatePEM, expires: issued.notAfter)
            }
        }
    }

    // MARK: Connections and heartbeats

    /// Registers a connection of node `name` that said hello; answers the connection's number.
    func connected(name: String, hello: AgentMessage.Hello, onRemove: @escaping @Sendable () -> Void) async throws -> UInt64 {
        try Labels.validate(hello.labels)
        let connection = nextConnection.wrappingAdd(1, ordering: .relaxed).oldValue
        let now = Date()
        disconnectHandlers.withLock { $0[connection] = onRemove }
        live.withLock { live in
            let previous = live[name]
            live[name] = LiveNode(
                connection: connection, lastHeartbeat: .now, lastSeen: now, consecutiveHeartbeats: 0,
                status: previous?.status ?? .unhealthy)
        }
        do {
            try await register(name: name, hello: hello, now: now)
        } catch {
            // Not registered after all: leave no trace of the connection here.
            disconnectHandlers.withLock { _ = $0.removeValue(forKey: connection) }
            live.withLock { live in
                if live[name]?.connection == connection { live[name]?.connection = nil }
            }
            throw error
        }
        logger.info("agent connected", metadata: ["node": "\(name)", "connection": "\(connection)"])
        return connection
    }

    /// Records the facts and labels of a connecting node and its presence here.
    private func register(name: String, hello: AgentMessage.Hello, now: Date) async throws {
        // Facts and agent labels as the agent sees them now; the status as this replica knows it.
        try await update(name) { record in
            record.facts = hello.facts
            record.agentLabels = hello.labels
            record.lastSeen = now
            if let status = self.live.withLock({ $0[name]?.status }), record.status != status {
                record.status = status
                record.statusSince = now
            }
        }
        if let lease = try await ensurePresenceLease() {
            try await store.put(StoreLayout.presence(name), Data(replicaID.utf8), lease: lease)
        }
    }

    /// Counts a heartbeat of `name` on `connection`.
    func heartbeat(name: String, connection: UInt64) {
        let now = Date()
        let persist = live.withLock { live -> Bool in
            guard var node = live[name], node.connection == connection else { return false }
            node.lastHeartbeat = .now
            node.lastSeen = now
            node.consecutiveHeartbeats += 1
            var persist = false
            if node.status == .unhealthy, node.consecutiveHeartbeats >= Self.heartbeatsToRecover {
                node.status = .healthy
                persist = true
            }
            live[name] = node
            return persist
        }
        if persist { persistLiveState(of: name) }
    }

    /// Counts any other message from `name` on `connection` as a sign of life: an agent busy
    /// sending a large job result may send its heartbeat late, and is not silent meanwhile.
    func sawTraffic(name: String, connection: UInt64) {
        live.withLock { live in
            guard live[name]?.connection == connection else { return }
            live[name]?.lastHeartbeat = .now
        }
    }

    /// Forgets `connection` of `name`; the node keeps its status until its silence counts.
    func disconnected(name: String, connection: UInt64) async {
        disconnectHandlers.withLock { _ = $0.removeValue(forKey: connection) }
        let wasCurrent = live.withLock { live -> Bool in
            guard live[name]?.connection == connection else { return false }
            live[name]?.connection = nil
            return true
        }
        guard wasCurrent else { return }
        logger.info("agent disconnected", metadata: ["node": "\(name)", "connection": "\(connection)"])
        do {
            let presence = StoreLayout.presence(name)
            // Only this replica's presence: the node may already be connected elsewhere.
            _ = try await store.txn(
                TxnRequest(
                    compares: [Compare(key: presence, .value(Data(replicaID.utf8)))], success: [.delete(.key(presence))]))
        } catch {
            logger.warning("could not clear the presence of a disconnected node", metadata: ["node": "\(name)", "error": "\(error)"])
        }
        persistLiveState(of: name)
    }

    /// Checks liveness every half interval and keeps the presence lease alive, until cancelled.
    public func run() async throws {
        var sinceSweep = Duration.zero
        let tick = max(heartbeatInterval / 2, .milliseconds(20))
        while !Task.isCancelled {
            try await Task.sleep(for: tick)
            sinceSweep += tick
            markSilentNodes()
            if sinceSweep >= heartbeatInterval * Self.missedToFail {
                sinceSweep = .zero
                do {
                    try await keepPresence()
                    try await adoptOrphans()
                } catch {
                    logger.warning("node liveness sweep failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    private let silenceHandlers = Mutex<[@Sendable (String) -> Void]>([])

    /// Calls `handler` with the name of every node that turns unhealthy for missing heartbeats.
    func onSilence(_ handler: @escaping @Sendable (String) -> Void) {
        silenceHandlers.withLock { $0.append(handler) }
    }

    /// Nodes silent for `missedToFail` intervals turn unhealthy.
    private func markSilentNodes() {
        let limit = heartbeatInterval * Self.missedToFail
        let failed = live.withLock { live -> [String] in
            var failed: [String] = []
            for (name, node) in live where node.status == .healthy && node.lastHeartbeat.duration(to: .now) > limit {
                live[name]?.status = .unhealthy
                live[name]?.consecutiveHeartbeats = 0
                failed.append(name)
            }
            return failed
        }
        let handlers = failed.isEmpty ? [] : silenceHandlers.withLock { $0 }
        for name in failed {
            logger.warning("node missed its heartbeats", metadata: ["node": "\(name)"])
            persistLiveState(of: name)
            for handler in handlers { handler(name) }
        }
    }

    /// Starts watching healthy nodes that nobody holds (no presence key): unless one connects
    /// here, `markSilentNodes` fails them after `missedToFail` intervals.
    private func adoptOrphans() async throws {
        let nodes = try await store.range(RangeRequest(.prefix(StoreLayout.nodes)))
        let present = Set(
            try await store.range(RangeRequest(.prefix(StoreLayout.presences), keysOnly: true)).kvs.map {
                String($0.key.dropFirst(StoreLayout.presences.count))
            })
        for kv in nodes.kvs {
            guard let record = try? RecordCoding.decoder.decode(NodeRecord.self, from: kv.value), record.status == .healthy,
                !present.contains(record.name)
            else { continue }
            live.withLock { live in
                if live[record.name] == nil {
                    live[record.name] = LiveNode(
                        connection: nil, lastHeartbeat: .now, lastSeen: record.lastSeen ?? record.statusSince, consecutiveHeartbeats: 0,
                        status: .healthy)
                }
            }
        }
        // Nodes connected elsewhere meanwhile are not this replica's to judge.
        live.withLock { live in
            for (name, node) in live where node.connection == nil && present.contains(name) {
                live.removeValue(forKey: name)
            }
        }
    }

    /// Writes the status and last-seen time this replica holds for `name`, in the background.
    private func persistLiveState(of name: String) {
        Task {
            guard let node = live.withLock({ $0[name] }) else { return }
            do {
                // A node that connected to another replica meanwhile is that replica's to judge:
                // without its connection here, this one writes only while no replica holds the
                // node (checked in the write's own transaction), and otherwise forgets it instead
                // of writing a stale status over the live one.
                let written = try await update(name, whileUnheld: node.connection == nil) { record in
                    if record.status != node.status {
                        record.status = node.status
                        record.statusSince = Date()
                    }
                    record.lastSeen = node.lastSeen
                }
                if !written {
                    live.withLock { live in
                        if live[name]?.connection == nil { live.removeValue(forKey: name) }
                    }
                }
            } catch let error as CapstanError where error.code == .nodeNotFound {
                live.withLock { _ = $0.removeValue(forKey: name) }
            } catch {
                logger.warning("could not record a node's status", metadata: ["node": "\(name)", "error": "\(error)"])
            }
        }
    }

    // MARK: Presence lease

    private func presenceTTL() -> Int64 {
        max(10, Int64((heartbeatInterval * Self.missedToFail).components.seconds) + 1)
    }

    /// The presence lease, granted once however many agents connect at the same moment: the
    /// first caller starts the grant, the others await the same one.
    private func ensurePresenceLease() async throws -> LeaseID? {
        let grant = presenceGrant.withLock { current -> Task<LeaseID, any Error> in
            if let current { return current }
            let store = self.store
            let ttl = presenceTTL()
            let task = Task { try await store.grantLease(ttl: ttl).id }
            current = task
            return task
        }
        do {
            let lease = try await grant.value
            presenceLease.withLock { $0 = lease }
            return lease
        } catch {
            // A failed grant is tried again by the next caller.
            presenceGrant.withLock { if $0 == grant { $0 = nil } }
            throw error
        }
    }

    /// Renews the presence lease; when it was lost, takes a new one and writes every connected
    /// node's presence again.
    private func keepPresence() async throws {
        guard let lease = presenceLease.withLock({ $0 }) else { return }
        do {
            _ = try await store.keepAlive(lease)
        } catch let error as StoreError where error.code == .leaseNotFound {
            presenceLease.withLock { $0 = nil }
            presenceGrant.withLock { $0 = nil }
            guard let fresh = try await ensurePresenceLease() else { return }
            let connected = live.withLock { $0.filter { $0.value.connection != nil }.map(\.key) }
            for name in connected {
                try await store.put(StoreLayout.presence(name), Data(replicaID.utf8), lease: fresh)
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
        guard let (record, revision) = try await read(name) else { throw Self.notFound(name) }
        let present = try await store.get(StoreLayout.presence(name)) != nil
        return info(record, revision: revision, present: present)
    }

    /// Sets and removes server labels.
    public func label(_ name: String, _ change: NodeLabelChange) async throws -> NodeInfo {
        try Labels.validate(change.set)
        for key in change.remove { try Labels.validateKey(key) }
        try await update(name) { record in
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
        let connection = live.withLock { $0.removeValue(forKey: name)?.connection }
        if let connection, let close = disconnectHandlers.withLock({ $0[connection] }) { close() }
        logger.info("node removed", metadata: ["node": "\(name)"])
    }

    /// A node's record was deleted, on this replica or another: its agent's connection here,
    /// if it has one, is closed (its secret no longer works, so it cannot come back as it was).
    func recordDeleted(_ name: String) {
        let connection = live.withLock { $0.removeValue(forKey: name)?.connection }
        if let connection, let close = disconnectHandlers.withLock({ $0[connection] }) { close() }
    }

    // MARK: Helpers

    private func info(_ record: NodeRecord, revision: Int64, present: Bool) -> NodeInfo {
        var info = record.info(revision: revision, connected: present)
        // What this replica saw of a node that another replica holds now is stale.
        if let node = live.withLock({ $0[record.name] }), node.connection != nil || !present {
            info.status = node.status
            info.lastSeen = node.lastSeen
            if node.connection != nil { info.connected = true }
        }
        return info
    }

    private func read(_ name: String) async throws -> (NodeRecord, Int64)? {
        guard let kv = try await store.get(StoreLayout.node(name)) else { return nil }
        return (try RecordCoding.decoder.decode(NodeRecord.self, from: kv.value), kv.modRevision)
    }

    /// Applies `change` to the stored record of `name`, retrying on a concurrent write.
    private func update(_ name: String, _ change: @Sendable (inout NodeRecord) -> Void) async throws {
        _ = try await update(name, whileUnheld: false, change)
    }

    /// Applies `change` to the stored record of `name`, retrying on a concurrent write. With
    /// `whileUnheld`, only while no replica holds the node's presence: false when one does.
    private func update(_ name: String, whileUnheld: Bool, _ change: @Sendable (inout NodeRecord) -> Void) async throws -> Bool {
        let presence = StoreLayout.presence(name)
        while true {
            guard let (record, revision) = try await read(name) else { throw Self.notFound(name) }
            var changed = record
            change(&changed)
            if changed == record { return true }
            if try await write(changed, expecting: revision, also: whileUnheld ? [.absent(presence)] : []) != nil { return true }
            if whileUnheld, try await store.get(presence) != nil { return false }
        }
    }

    /// Writes `record` if its key is still at `revision` (0: absent) and `conditions` hold; nil
    /// when they did not.
    private func write(_ record: NodeRecord, expecting revision: Int64, also conditions: [Compare] = []) async throws -> Int64? {
        let key = StoreLayout.node(record.name)
        let result = try await store.txn(
            TxnRequest(
                compares: [Compare(key: key, .modRevision(revision))] + conditions,
                success: [.put(key: key, value: try RecordCoding.encoder.encode(record))]))
        return result.succeeded ? result.revision : nil
    }

    static func notFound(_ name: String) -> CapstanError {
        CapstanError(.nodeNotFound, "node \(name.quoted) not found")
    }

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
