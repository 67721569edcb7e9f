import NIOCore
import Synchronization

/// What waits to be written on one agent's connection: messages in order (jobs), and the
/// newest template set. Posting returns at once: a slow or stuck connection holds up no other.
/// A template set not yet written when the next comes is replaced by it, so sets pile up
/// nothing. Nothing waits while there is nothing to write.
///
/// On a connection, messages are written as the bytes of their WebSocket frames, framed before
/// (`FramedText`), from an `AgentFrameWriter` next to the socket, on the channel's event loop: a
/// push to 10,000 agents costs 10,000 small jobs on the event loops, each writing one shared
/// buffer, not 10,000 tasks each hopping through the WebSocket handler's actor and async writer
/// and framing the set again. The next message goes once the previous one is out, which is what
/// lets a newer set replace one waiting.
final class AgentOutbox: Sendable {
    private enum Sink: Sendable {
        case connection(NIOLoopBound<ChannelHandlerContext>, any EventLoop)
        case function(write: @Sendable (ByteBuffer) async throws -> Void, failed: @Sendable () async -> Void)
    }

    private let sink: Sink
    private struct State {
        var queue: [FramedText] = []
        var templates: FramedText?
        var writing = false
        var closed = false
    }
    private let state = Mutex(State())

    /// Writes from `writer`, the context of an `AgentFrameWriter` on an agent's WebSocket,
    /// toward the socket; call on the channel's event loop. A write that fails closes the outbox
    /// and the channel (the agent reconnects with its digest and gets what it missed).
    init(writer: ChannelHandlerContext) {
        sink = .connection(NIOLoopBound(writer, eventLoop: writer.eventLoop), writer.eventLoop)
    }

    /// `write` writes one message's text, on a task; `failed` runs once, after the first write
    /// that throws (the outbox is closed by then).
    init(write: @escaping @Sendable (ByteBuffer) async throws -> Void, failed: @escaping @Sendable () async -> Void) {
        sink = .function(write: write, failed: failed)
    }

    /// The largest frame written: the default that WebSocket peers (the agent's client among
    /// them) accept. Longer messages go as continuation frames.
    static let maxFrameBytes = 1 << 14

    /// Hands over a template set, replacing one still waiting.
    func post(_ set: FramedText) {
        enqueue { $0.templates = set }
    }

    /// Hands over a message to write after those before it; answers false when closed.
    @discardableResult
    func send(_ text: ByteBuffer) -> Bool {
        let message = FramedText(text)
        return enqueue { $0.queue.append(message) }
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
        case .connection(let writer, let eventLoop):
            eventLoop.execute { self.writeNext(from: writer.value, depth: 0) }
        case .function(let write, let failed):
            Task { await drain(write, failed) }
        }
        return accepted
    }

    /// The next message to write, or nil (and no longer writing) when none waits.
    private func next() -> FramedText? {
        state.withLock { state -> FramedText? in
            if !state.queue.isEmpty { return state.queue.removeFirst() }
            if let templates = state.templates {
                state.templates = nil
                return templates
            }
            state.writing = false
            return nil
        }
    }

    /// On the channel's event loop: writes the next message's frames (a shared buffer, never
    /// copied), and the message after once they are out.
    private func writeNext(from writer: ChannelHandlerContext, depth: Int) {
        guard let message = next() else { return }
        let bound = NIOLoopBound(writer, eventLoop: writer.eventLoop)
        writer.writeAndFlush(NIOAny(message.frames)).whenComplete { result in
            switch result {
            case .success:
                // Writes that complete at once would nest; after a few, go on from a fresh stack.
                if depth < 16 {
                    self.writeNext(from: bound.value, depth: depth + 1)
                } else {
                    bound.eventLoop.execute { self.writeNext(from: bound.value, depth: 0) }
                }
            case .failure:
                self.close()
                bound.value.close(promise: nil)
            }
        }
    }

    private func drain(_ write: @Sendable (ByteBuffer) async throws -> Void, _ failed: @Sendable () async -> Void) async {
        while let message = next() {
            do {
                try await write(message.text)
            } catch {
                close()
                await failed()
                return
            }
        }
    }
}
