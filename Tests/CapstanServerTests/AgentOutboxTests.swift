import NIOCore
import NIOEmbedded
import NIOWebSocket
import Synchronization
import Testing

@testable import CapstanServer

@Suite("Agent outbox")
struct AgentOutboxTests {
    /// A write that can be held until the test lets it go, and that tells the test what it wrote.
    final class Writer: Sendable {
        let written: AsyncStream<String>
        private let continuation: AsyncStream<String>.Continuation
        private let held = Mutex<(holding: Bool, waiter: CheckedContinuation<Void, Never>?)>((true, nil))

        init() {
            (written, continuation) = AsyncStream.makeStream(of: String.self)
        }

        func write(_ buffer: ByteBuffer) async {
            let text = String(buffer: buffer)
            continuation.yield("start \(text)")
            await withCheckedContinuation { waiter in
                let wait = held.withLock { state -> Bool in
                    guard state.holding else { return false }
                    state.waiter = waiter
                    return true
                }
                if !wait { waiter.resume() }
            }
            continuation.yield("done \(text)")
        }

        func release() {
            let waiter = held.withLock { state -> CheckedContinuation<Void, Never>? in
                state.holding = false
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }

    @Test func aStuckWriteKeepsOnlyTheNewestMessageAndHoldsUpNothingElse() async throws {
        let writer = Writer()
        let outbox = AgentOutbox { await writer.write($0) } failed: {}
        var events = writer.written.makeAsyncIterator()
        outbox.post(FramedText(ByteBuffer(string: "a")))
        #expect(await events.next() == "start a")
        // The write of "a" is stuck; posting returns at once, and "c" replaces "b" unsent.
        outbox.post(FramedText(ByteBuffer(string: "b")))
        outbox.post(FramedText(ByteBuffer(string: "c")))
        writer.release()
        #expect(await events.next() == "done a")
        #expect(await events.next() == "start c")
        #expect(await events.next() == "done c")
        // Idle again: the next post starts a new write.
        outbox.post(FramedText(ByteBuffer(string: "d")))
        #expect(await events.next() == "start d")
        #expect(await events.next() == "done d")
    }

    @Test func aFailedWriteClosesTheOutboxAndReportsOnce() async throws {
        struct Broken: Error {}
        let attempts = Atomic<Int>(0)
        let (failures, failure) = AsyncStream.makeStream(of: Void.self)
        let outbox = AgentOutbox { _ in
            attempts.add(1, ordering: .relaxed)
            throw Broken()
        } failed: {
            failure.yield()
        }
        outbox.post(FramedText(ByteBuffer(string: "a")))
        var iterator = failures.makeAsyncIterator()
        #expect(await iterator.next() != nil)
        #expect(outbox.isClosed)
        outbox.post(FramedText(ByteBuffer(string: "b")))
        #expect(attempts.load(ordering: .relaxed) == 1)
    }

    @Test func nothingIsWrittenAfterClose() async throws {
        let writer = Writer()
        writer.release()
        let outbox = AgentOutbox { await writer.write($0) } failed: {}
        outbox.close()
        outbox.post(FramedText(ByteBuffer(string: "late")))
        #expect(outbox.isClosed)
        // A write posted to an open outbox afterwards is the first event: "late" never started.
        let other = AgentOutbox { await writer.write($0) } failed: {}
        other.post(FramedText(ByteBuffer(string: "next")))
        var events = writer.written.makeAsyncIterator()
        #expect(await events.next() == "start next")
    }
}

/// The outbox on a connection's channel: frames written on the event loop, from an `AgentFrameWriter`.
@Suite("Agent outbox on a channel")
struct AgentOutboxChannelTests {
    func connectedChannel(_ handlers: [any ChannelHandler & Sendable] = []) async throws -> (NIOAsyncTestingChannel, AgentOutbox) {
        let channel = NIOAsyncTestingChannel()
        for handler in handlers { try await channel.pipeline.addHandler(handler) }
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1))
        let outbox = try await channel.testingEventLoop.executeInContext {
            let writer = AgentFrameWriter()
            try channel.pipeline.syncOperations.addHandler(writer)
            return AgentOutbox(writer: try channel.pipeline.syncOperations.context(handler: writer))
        }
        return (channel, outbox)
    }

    /// The frames in the bytes written, as a client's frame decoder reads them.
    static func frames(in buffers: [ByteBuffer]) throws -> [WebSocketFrame] {
        let decoder = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)))
        for buffer in buffers { try decoder.writeInbound(buffer) }
        var frames: [WebSocketFrame] = []
        while let frame = try decoder.readInbound(as: WebSocketFrame.self) { frames.append(frame) }
        _ = try decoder.finish()
        return frames
    }

    func text(of frames: [WebSocketFrame]) -> String {
        frames.map { String(buffer: $0.data) }.joined()
    }

    @Test func framedTextIsWhatAWebSocketDecoderReadsBack() throws {
        for length in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let message = String(repeating: "x", count: length)
            let frames = try Self.frames(in: [FramedText(ByteBuffer(string: message), maxFrameBytes: 1 << 20).frames])
            #expect(frames.count == 1)
            #expect(frames.first?.opcode == .text && frames.first?.fin == true && frames.first?.maskKey == nil)
            #expect(text(of: frames) == message, "length \(length)")
        }
    }

    @Test func aLongSetGoesAsContinuationFramesThatNoOtherMessageComesBetween() async throws {
        let (channel, outbox) = try await connectedChannel()
        let set = String(repeating: "s", count: 2 * AgentOutbox.maxFrameBytes + 10)
        outbox.post(FramedText(ByteBuffer(string: set)))
        outbox.send(ByteBuffer(string: "job"))
        // One buffer per message: the set's frames are written as one.
        let written = [try await channel.waitForOutboundWrite(as: ByteBuffer.self), try await channel.waitForOutboundWrite(as: ByteBuffer.self)]
        let frames = try Self.frames(in: written)
        #expect(frames.count == 4)
        // The job goes before the set (when both waited for the event loop) or after it, never inside.
        let job = try #require(frames.firstIndex { String(buffer: $0.data) == "job" })
        #expect(job == 0 || job == 3)
        #expect(frames[job].opcode == .text && frames[job].fin)
        var setFrames = frames
        setFrames.remove(at: job)
        #expect(setFrames.map(\.opcode) == [.text, .continuation, .continuation])
        #expect(setFrames.map(\.fin) == [false, false, true])
        #expect(setFrames.map(\.data.readableBytes) == [AgentOutbox.maxFrameBytes, AgentOutbox.maxFrameBytes, 10])
        #expect(text(of: setFrames) == set)
        #expect(frames.allSatisfy { $0.maskKey == nil })
        _ = try await channel.finish(acceptAlreadyClosed: true)
    }

    /// Holds every write until released, failing them instead when told to.
    final class HeldWrites: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = ByteBuffer
        private let state = Mutex<(texts: [String], promises: [EventLoopPromise<Void>?])>(([], []))

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            let buffer = unwrapOutboundIn(data)
            let text = (try? AgentOutboxChannelTests.frames(in: [buffer]))?.map { String(buffer: $0.data) }.joined() ?? "?"
            state.withLock { state in
                state.texts.append(text)
                state.promises.append(promise)
            }
        }

        var texts: [String] { state.withLock { $0.texts } }

        func complete(_ result: Result<Void, any Error>) {
            let promises = state.withLock { state in
                defer { state.promises = [] }
                return state.promises
            }
            for promise in promises { promise?.completeWith(result) }
        }
    }

    @Test func whileASetIsBeingWrittenOnlyTheNewestWaitsAndAFailedWriteClosesTheConnection() async throws {
        struct Broken: Error {}
        let held = HeldWrites()
        let (channel, outbox) = try await connectedChannel([held])
        outbox.post(FramedText(ByteBuffer(string: "a")))
        try await channel.testingEventLoop.executeInContext {}
        #expect(held.texts == ["a"])
        outbox.post(FramedText(ByteBuffer(string: "b")))
        outbox.post(FramedText(ByteBuffer(string: "c")))
        try await channel.testingEventLoop.executeInContext {}
        #expect(held.texts == ["a"])
        try await channel.testingEventLoop.executeInContext { held.complete(.success(())) }
        #expect(held.texts == ["a", "c"])
        // The write of "c" fails: the outbox closes, and so does the connection.
        try await channel.testingEventLoop.executeInContext { held.complete(.failure(Broken())) }
        try await channel.closeFuture.get()
        #expect(outbox.isClosed)
        outbox.post(FramedText(ByteBuffer(string: "d")))
        #expect(held.texts == ["a", "c"])
    }
}
