import CapstanCore
import Foundation
import NIOCore
import Synchronization

/// The agent connections this replica holds, by node name: what jobs are sent on.
final class AgentLinks: Sendable {
    struct Link: Sendable {
        var connection: UInt64
        /// The protocol version the agent said hello with.
        var version: Int
        var outbox: AgentOutbox
    }

    private struct State {
        var links: [String: Link] = [:]
        /// Callers waiting for a node to connect.
        var waiters: [String: [UUID: CheckedContinuation<Link?, Never>]] = [:]
    }

    private let state = Mutex(State())

    func add(_ name: String, _ link: Link) {
        let waiters = state.withLock { state in
            state.links[name] = link
            return state.waiters.removeValue(forKey: name) ?? [:]
        }
        for waiter in waiters.values { waiter.resume(returning: link) }
    }

    /// Forgets the link of `name` if it is still `connection` (a reconnect may have replaced it).
    func remove(_ name: String, connection: UInt64) {
        state.withLock { state in
            if state.links[name]?.connection == connection { state.links.removeValue(forKey: name) }
        }
    }

    func link(_ name: String) -> Link? {
        state.withLock { $0.links[name] }
    }

    /// The node's link, waiting up to `limit` for it to connect; nil when it did not.
    func link(_ name: String, within limit: Duration) async -> Link? {
        if let link = link(name) { return link }
        let id = UUID()
        return await withTaskGroup(of: Link?.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let ready = self.state.withLock { state -> Link?? in
                        if let link = state.links[name] { return .some(link) }
                        state.waiters[name, default: [:]][id] = continuation
                        return .none
                    }
                    if let ready { continuation.resume(returning: ready) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: limit)
                let waiter = self.state.withLock { state in state.waiters[name]?.removeValue(forKey: id) }
                waiter?.resume(returning: nil)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// Sends a message to the node's current connection; false when it has none.
    func send(_ message: AgentMessage, to name: String) -> Bool {
        guard let link = link(name), let text = try? AgentMessage.encode(message) else { return false }
        return link.outbox.send(ByteBuffer(string: text))
    }
}
