import CapstanCore
import CapstanStore
import Foundation
import Logging
import Synchronization

/// Nodes' liveness, from their agents' connections and heartbeats.
///
/// Liveness is kept in memory by the replica an agent is connected to: each heartbeat counts,
/// a node turns `healthy` after 2 in a row and `unhealthy` when none came for 3 intervals; only
/// these transitions, connects and disconnects are written to the store (with the last-seen
/// time, by one writer beside the heartbeats), so a heartbeat costs no write: 10,000 nodes would
/// otherwise cost hundreds of writes a second. The replica holding a node's connection answers
/// its exact last-seen time; another replica answers the stored one, and `connected` (the
/// presence key) says the node is there. While connected, a node holds a presence key under this
/// replica's store lease (`/capstan/presence/NAME`). A node that is `healthy` in the store but
/// holds no presence key anywhere (its replica died, or it disconnected while another replica
/// was down) is marked `unhealthy` by whichever replica notices, after the same 3 intervals.
public final class NodeLiveness: Sendable {
    let store: any KeyValueStore
    let records: NodeRecords
    public let heartbeatInterval: Duration
    private let logger: Logger
    private let replicaID = UUID().uuidString
    private let live = Mutex<[String: LiveNode]>([:])
    private let presenceLease = Mutex<LeaseID?>(nil)
    private let presenceGrant = Mutex<Task<LeaseID, any Error>?>(nil)
    private let nextConnection = Atomic<UInt64>(1)
    /// Closes a node's connection on this replica (after `node rm`); set by the agent gateway.
    private let disconnectHandlers = Mutex<[UInt64: @Sendable () -> Void]>([:])
    private let silenceHandlers = Mutex<[@Sendable (String) -> Void]>([])
    /// Nodes whose status and last-seen time are to be written, and the writer's wake-up.
    private let pendingWrites = Mutex<Set<String>>([])
    private let wakeWriter = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))

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

    init(records: NodeRecords, heartbeatInterval: Duration, logger: Logger) {
        self.store = records.store
        self.records = records
        self.heartbeatInterval = heartbeatInterval
        self.logger = logger
    }

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
        try await records.update(name) { record in
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

    /// Checks liveness every half interval, keeps the presence lease alive and writes status
    /// changes, until cancelled.
    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await self.writeLiveStates() }
            defer { group.cancelAll() }
            try await sweep()
        }
    }

    /// Marks silent nodes every half interval; adopts orphans and renews the presence lease
    /// every `missedToFail` intervals.
    private func sweep() async throws {
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

    /// Has the status and last-seen time this replica holds for `name` written by `run`'s
    /// writer: a heartbeat or a sweep never waits for the store.
    private func persistLiveState(of name: String) {
        pendingWrites.withLock { _ = $0.insert(name) }
        wakeWriter.continuation.yield()
    }

    /// Writes the live state of the nodes queued, until cancelled: all those queued at once side
    /// by side (a fleet turning healthy together shares group commits), one write per node at a
    /// time (a later state waits for the earlier write), each with the state as it is then.
    private func writeLiveStates() async {
        for await _ in wakeWriter.stream {
            while true {
                let names = pendingWrites.withLock { pending in
                    defer { pending = [] }
                    return pending
                }
                if names.isEmpty { break }
                await withDiscardingTaskGroup { group in
                    for name in names { group.addTask { await self.writeLiveState(of: name) } }
                }
            }
        }
    }

    private func writeLiveState(of name: String) async {
        guard let node = live.withLock({ $0[name] }) else { return }
        do {
            // A node that connected to another replica meanwhile is that replica's to judge:
            // without its connection here, this one writes only while no replica holds the
            // node (checked in the write's own transaction), and otherwise forgets it instead
            // of writing a stale status over the live one.
            let written = try await records.update(name, whileUnheld: node.connection == nil) { record in
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

    // MARK: What readers see

    /// `info` as this replica knows the node: its own connection's status and last-seen time
    /// are newer than the stored ones. What it saw of a node another replica holds now is stale.
    func overlay(_ info: inout NodeInfo, present: Bool) {
        guard let node = live.withLock({ $0[info.name] }), node.connection != nil || !present else { return }
        info.status = node.status
        info.lastSeen = node.lastSeen
        if node.connection != nil { info.connected = true }
    }

    /// Forgets node `name` (removed) and closes its agent's connection here, if it has one.
    func forget(_ name: String) {
        let connection = live.withLock { $0.removeValue(forKey: name)?.connection }
        if let connection, let close = disconnectHandlers.withLock({ $0[connection] }) { close() }
    }
}
