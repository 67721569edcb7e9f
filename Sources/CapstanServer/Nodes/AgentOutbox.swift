import NIOCore
import NIOWebSocket
import Synchronization

/// What waits to be written on one agent's connection: messages in order (jobs), and the
/// newest template set. Posting returns at once: a slow or stuck connection holds up no other.
/// A template set not yet written when the next comes is replaced by it, so sets pile up
/// nothing. Nothing waits while there is nothing to write.
///
/// On a connection, messages are written as WebSocket frames straight to its channel, on the
/// channel's event loop: a push to 10,000 agents costs 10,000 small jobs on the event loops, not
/// 10,000 tasks each hopping through the WebSocket handler's actor and async writer. The next
/// message goes once the previous one is out, which is what lets a newer set replace one waiting.
final class AgentOutbox: Sendable {
    private enum Sink: Sendable {
        case channel(any Channel)
        case function(write: @Sendable (ByteBuffer) async throws -> Void, failed: @Sendable () async -> Void)
    }

    private let sink: Sink
    private struct State {
        var queue: [ByteBuffer] = []
        var templates: ByteBuffer?
        var writing = false
        var closed = false
    }
    private let state = Mutex(State())

    /// Writes to an agent's WebSocket `channel`; a write that fails closes the outbox and the
    /// channel (the agent reconnects with its digest and gets what it missed).
    init(channel: any Channel) {
        sink = .channel(channel)
    }

    /// `write` writes one message, on a task; `failed` runs once, after the first write that
    /// throws (the outbox is closed by then).
    init(write: @escaping @Sendable (ByteBuffer) async throws -> Void, failed: @escaping @Sendable () async -> Void) {
        sink = .function(write: write, failed: failed)
    }

    /// The largest frame written: the default that WebSocket peers (the agent's client among
    /// them) accept. Longer messages go as continuation frames.
    static let maxFrameBytes = 1 << 14

    /// Hands over a template set, replacing one still waiting.
    func post(_ text: ByteBuffer) {
        enqueue { $0.templates = text }
    }

    /// Hands over a message to write after those before it; answers false when closed.
    @discardableResult
    func send(_ text: ByteBuffer) -> Bool {
        enqueue { $0.queue.append(text) }
    }

    var isClosed: Bool { state.withLock { $0.closed } }

    /// Drops what waits; later posts are ignored.
    func close() {
        state.withLock { state in
            state.closed = true
            state.queue = []
            state.templates = nil
        }
    }

    @discardableResult
    private func enqueue(_ add: (inout State) -> Void) -> Bool {
        let (accepted, start) = state.withLock { state -> (Bool, Bool) in
            guard !state.closed else { return (false, false) }
            add(&state)
            guard !state.writing else { return (true, false) }
            state.writing = true
            return (true, true)
        }
        guard start else { return accepted }
        switch sink {
        case .channel(let channel):
            channel.eventLoop.execute { self.writeNext(to: channel, depth: 0) }
        case .function(let write, let failed):
            Task { await drain(write, failed) }
        }
        return accepted
    }

    /// The next message to write, or nil (and no longer writing) when none waits.
    private func next() -> ByteBuffer? {
        state.withLock { state -> ByteBuffer? in
            if !state.queue.isEmpty { return state.queue.removeFirst() }
            if let templates = state.templates {
                state.templates = nil
                return templates
            }
            state.writing = false
            return nil
        }
    }

    /// On the channel's event loop: writes the next message, and the one after once it is out.
    private func writeNext(to channel: any Channel, depth: Int) {
        guard let text = next() else { return }
        Self.write(text, to: channel).whenComplete { result in
            switch result {
            case .success:
                // Writes that complete at once would nest; after a few, go on from a fresh stack.
                if depth < 16 {
                    self.writeNext(to: channel, depth: depth + 1)
                } else {
                    channel.eventLoop.execute { self.writeNext(to: channel, depth: 0) }
                }
            case .failure:
                self.close()
                channel.close(promise: nil)
            }
        }
    }

    /// Writes one text message from a shared buffer (never copied) in frames of at most
    /// `maxFrameBytes`; the future completes when the last frame is written.
    static func write(_ text: ByteBuffer, to channel: any Channel) -> EventLoopFuture<Void> {
        var rest = text
        var opcode = WebSocketOpcode.text
        while rest.readableBytes > maxFrameBytes, let slice = rest.readSlice(length: maxFrameBytes) {
            channel.write(WebSocketFrame(fin: false, opcode: opcode, data: slice), promise: nil)
            opcode = .continuation
        }
        return channel.writeAndFlush(WebSocketFrame(fin: true, opcode: opcode, data: rest))
    }

    private func drain(_ write: @Sendable (ByteBuffer) async throws -> Void, _ failed: @Sendable () async -> Void) async {
        while let text = next() {
            do {
                try await write(text)
            } catch {
                close()
                await failed()
                return
            }
        }
    }
}
