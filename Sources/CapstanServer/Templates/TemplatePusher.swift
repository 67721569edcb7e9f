import CapstanCore
import CapstanStore
import Foundation
import Logging
import NIOCore
import Synchronization

/// Pushes each connected agent the templates that bind its node, whenever that set or one of
/// their inputs (a template, a config it reads, the node's labels) changes: one store watch per
/// replica, and a message to an agent only when its set's digest changed.
final class TemplatePusher: Sendable {
    let templates: TemplateService
    let checks: CheckService
    let registry: NodeRegistry
    let logger: Logger
    /// Rollouts: member nodes get sets rendered from their candidates.
    let rollouts: RolloutService?

    struct Session: Sendable {
        var name: String
        /// The digest of the set the agent has, or was last handed to send.
        var digest: String?
        /// Hands one encoded message (JSON text, framed) to the connection's writer and returns
        /// at once; a message not yet written when the next comes is replaced by it.
        var post: @Sendable (FramedText) -> Void
    }

    private let sessions = Mutex<[UInt64: Session]>([:])
    /// Sessions per node name, so that a disconnect need not scan every session.
    private let sessionCounts = Mutex<[String: Int]>([:])
    /// A push is running (`running`), and another was asked for meanwhile (`again`).
    private let pushing = Mutex<(running: Bool, again: Bool)>((false, false))

    init(templates: TemplateService, checks: CheckService, registry: NodeRegistry, logger: Logger, rollouts: RolloutService? = nil) {
        self.templates = templates
        self.checks = checks
        self.registry = registry
        self.logger = logger
        self.rollouts = rollouts
    }

    /// Starts pushing to a new connection; `digest` is what the agent already has.
    func attach(connection: UInt64, name: String, digest: String?, post: @escaping @Sendable (FramedText) -> Void) async {
        sessions.withLock { $0[connection] = Session(name: name, digest: digest, post: post) }
        sessionCounts.withLock { $0[name, default: 0] += 1 }
        await pushAll()
    }

    func detach(connection: UInt64) {
        guard let name = sessions.withLock({ $0.removeValue(forKey: connection)?.name }) else { return }
        // A node normally has one session; a reconnect may briefly overlap the old one.
        let orphaned = sessionCounts.withLock { counts -> String? in
            let left = (counts[name] ?? 1) - 1
            counts[name] = left > 0 ? left : nil
            return left > 0 ? nil : name
        }
        // Forget the labels of a node no session here needs (they may change while it is away).
        if let orphaned { labelCache.withLock { _ = $0.removeValue(forKey: orphaned) } }
    }

    /// Follows the store and pushes after every change that can matter, until cancelled.
    func run() async throws {
        while !Task.isCancelled {
            do {
                for try await batch in templates.store.watch(.prefix(StoreLayout.root), fromRevision: nil) {
                    var relevant = false
                    for event in batch {
                        let key = event.kv.key
                        if key.hasPrefix(StoreLayout.nodes) {
                            // The event carries the record: keep the labels without reading them back.
                            let name = String(key.dropFirst(StoreLayout.nodes.count))
                            if event.kind == .delete { registry.recordDeleted(name) }
                            let record = event.kind == .put ? try? RecordCoding.decoder.decode(NodeRecord.self, from: event.kv.value) : nil
                            let changed = labelCache.withLock { cache -> Bool in
                                let labels = record.map { NodeLabels(merged: $0.labels, server: $0.serverLabels) }
                                defer { cache[name] = labels }
                                return cache[name] != labels
                            }
                            relevant = relevant || changed
                        } else if key.hasPrefix(StoreLayout.templates) || key.hasPrefix(StoreLayout.configs)
                            || key.hasPrefix(StoreLayout.checks) || key.hasPrefix(StoreLayout.rollouts)
                        {
                            relevant = true
                        }
                    }
                    if relevant { await pushAll() }
                }
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                logger.warning("template watch interrupted; resuming", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .milliseconds(200))
                await pushAll()
            }
        }
    }

    /// Recomputes every connected node's set and sends the ones that changed. Calls that come
    /// while one runs fold into one more run after it.
    func pushAll() async {
        let start = pushing.withLock { state -> Bool in
            if state.running {
                state.again = true
                return false
            }
            state.running = true
            return true
        }
        guard start else { return }
        while true {
            await pushOnce()
            let again = pushing.withLock { state -> Bool in
                if state.again {
                    state.again = false
                    return true
                }
                state.running = false
                return false
            }
            if !again { return }
        }
    }

    /// The labels of the nodes with a session here, kept from the store watch (and read once
    /// when a node attaches), so that a push reads no node record.
    private let labelCache = Mutex<[String: NodeLabels]>([:])

    /// A node's labels as selectors see them, and the server's alone: a template that carries
    /// secrets binds by these and the node's name only, which an agent cannot claim for itself.
    struct NodeLabels: Hashable, Sendable {
        var merged: [String: String]
        var server: [String: String]
    }

    /// Computes every connected node's set and hands each connection whose set changed the new one.
    private func pushOnce() async {
        let current = sessions.withLock { $0 }
        guard !current.isEmpty else { return }
        do {
            let labels = try await connectedLabels(Set(current.values.map(\.name)))
            var sets = try await PushSets(labels: labels, templates: templates, checks: checks, rollouts: rollouts)
            var outgoing: [(connection: UInt64, digest: String)] = []
            for (connection, session) in current {
                let message = try await sets.message(for: session.name)
                guard message.digest != session.digest else { continue }
                // Handed over at once, so that the event loops write while the rest is grouped.
                // Each connection writes on its own: a slow or stuck one holds up no other, and
                // keeps only the newest set waiting. The set is framed once per group, and its
                // buffer shared, not copied, per connection.
                session.post(message.text)
                outgoing.append((connection, message.digest))
            }
            sessions.withLock { sessions in
                for item in outgoing { sessions[item.connection]?.digest = item.digest }
            }
        } catch {
            logger.warning("could not compute template assignments", metadata: ["error": "\(error)"])
        }
    }

    /// The labels of the nodes named: from the cache, reading the records of nodes not in it yet.
    private func connectedLabels(_ names: Set<String>) async throws -> [String: NodeLabels] {
        let missing = labelCache.withLock { cache in names.filter { cache[$0] == nil } }
        for name in missing {
            let record = try await templates.store.get(StoreLayout.node(name)).flatMap {
                try? RecordCoding.decoder.decode(NodeRecord.self, from: $0.value)
            }
            labelCache.withLock { $0[name] = NodeLabels(merged: record?.labels ?? [:], server: record?.serverLabels ?? [:]) }
        }
        return labelCache.withLock { cache in
            var result: [String: NodeLabels] = [:]
            for name in names { result[name] = cache[name] ?? NodeLabels(merged: [:], server: [:]) }
            return result
        }
    }
}
