import NIOCore
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
        outbox.post(ByteBuffer(string: "a"))
        #expect(await events.next() == "start a")
        // The write of "a" is stuck; posting returns at once, and "c" replaces "b" unsent.
        outbox.post(ByteBuffer(string: "b"))
        outbox.post(ByteBuffer(string: "c"))
        writer.release()
        #expect(await events.next() == "done a")
        #expect(await events.next() == "start c")
        #expect(await events.next() == "done c")
        // Idle again: the next post starts a new write.
        outbox.post(ByteBuffer(string: "d"))
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
        outbox.post(ByteBuffer(string: "a"))
        var iterator = failures.makeAsyncIterator()
        #expect(await iterator.next() != nil)
        #expect(outbox.isClosed)
        outbox.post(ByteBuffer(string: "b"))
        #expect(attempts.load(ordering: .relaxed) == 1)
    }

    @Test func nothingIsWrittenAfterClose() async throws {
        let writer = Writer()
        writer.release()
        let outbox = AgentOutbox { await writer.write($0) } failed: {}
        outbox.close()
        outbox.post(ByteBuffer(string: "late"))
        #expect(outbox.isClosed)
        // A write posted to an open outbox afterwards is the first event: "late" never started.
        let other = AgentOutbox { await writer.write($0) } failed: {}
        other.post(ByteBuffer(string: "next"))
        var events = writer.written.makeAsyncIterator()
        #expect(await events.next() == "start next")
    }
}
