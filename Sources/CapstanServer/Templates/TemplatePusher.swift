import CapstanCore
import CapstanStore
import Foundation
import Logging
import Synchronization

/// Pushes each connected agent the templates that bind its node, whenever that set or one of
/// their inputs (a template, a config it reads, the node's labels) changes: one store watch per
/// replica, and a message to an agent only when its set's digest changed.
final class TemplatePusher: Sendable {
    let templates: TemplateService
    let registry: NodeRegistry
    let logger: Logger

    struct Session: Sendable {
        var name: String
        var digest: String?
        var send: @Sendable (AgentMessage) async throws -> Void
    }

    private let sessions = Mutex<[UInt64: Session]>([:])
    /// A push is running (`running`), and another was asked for meanwhile (`again`).
    private let pushing = Mutex<(running: Bool, again: Bool)>((false, false))

    init(templates: TemplateService, registry: NodeRegistry, logger: Logger) {
        self.templates = templates
        self.registry = registry
        self.logger = logger
    }

    /// Starts pushing to a new connection; `digest` is what the agent already has.
    func attach(
        connection: UInt64, name: String, digest: String?, send: @escaping @Sendable (AgentMessage) async throws -> Void
    ) async {
        sessions.withLock { $0[connection] = Session(name: name, digest: digest, send: send) }
        await pushAll()
    }

    func detach(connection: UInt64) {
        sessions.withLock { _ = $0.removeValue(forKey: connection) }
    }

    /// Follows the store and pushes after every change that can matter, until cancelled.
    func run() async throws {
        while !Task.isCancelled {
            do {
                for try await batch in templates.store.watch(.prefix(StoreLayout.root), fromRevision: nil) {
                    let relevant = batch.contains { event in
                        let key = event.kv.key
                        return key.hasPrefix(StoreLayout.templates) || key.hasPrefix(StoreLayout.configs)
                            || key.hasPrefix(StoreLayout.nodes)
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

    private func pushOnce() async {
        let current = sessions.withLock { $0 }
        guard !current.isEmpty else { return }
        do {
            let names = Set(current.values.map(\.name))
            let nodes = try await registry.list().filter { names.contains($0.name) }.map { ($0.name, $0.labels) }
            let labels = Dictionary(nodes.map { ($0.0, $0.1) }, uniquingKeysWith: { first, _ in first })
            let assignments = try await templates.assignments(for: nodes)
            for (connection, session) in current {
                let set = assignments[session.name] ?? []
                let nodeLabels = labels[session.name] ?? [:]
                let digest = TemplateService.digest(set, labels: nodeLabels)
                guard digest != session.digest else { continue }
                do {
                    try await session.send(
                        AgentMessage(type: .templates, templates: .init(assignments: set, labels: nodeLabels, digest: digest)))
                    sessions.withLock { $0[connection]?.digest = digest }
                } catch {
                    logger.debug("could not push templates", metadata: ["node": "\(session.name)", "error": "\(error)"])
                }
            }
        } catch {
            logger.warning("could not compute template assignments", metadata: ["error": "\(error)"])
        }
    }
}
