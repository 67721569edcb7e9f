import CapstanTesting
import Dispatch
import Synchronization
import Testing

@testable import CapstanStore

/// Group commit's batching (`WriteQueue`): what goes out together, and when a short batch waits.
@Suite("Write queue")
struct WriteQueueTests {
    /// The batches a queue applied, in order, and how many requests were answered.
    private final class Log: Sendable {
        let batches = Mutex<[[Int]]>([])
        let answered = Atomic<Int>(0)
        /// Set when the first batch is being applied (it then waits for `release`).
        let entered = Atomic<Bool>(false)
        let release = DispatchSemaphore(value: 0)

        func queue(gatherWindow: Duration) -> WriteQueue<Int, Int> {
            WriteQueue(label: "test.writer", gatherWindow: gatherWindow) { batch in
                if batch.first == 1 {
                    self.entered.store(true, ordering: .sequentiallyConsistent)
                    self.release.wait()
                }
                self.batches.withLock { $0.append(batch) }
                return batch.map { .success($0) }
            }
        }

        func enqueue(_ value: Int, on queue: WriteQueue<Int, Int>) {
            queue.enqueue(value) { _ in self.answered.add(1, ordering: .sequentiallyConsistent) }
        }

        func waitForAnswers(_ count: Int) async throws {
            try await eventually("\(count) answers") { self.answered.load(ordering: .sequentiallyConsistent) >= count }
        }

        /// Commits [1] alone, then [2, 3, 4] together (queued while [1] was being applied): the
        /// queue's last batch is then 3 long.
        func commitABatchOfThree(on queue: WriteQueue<Int, Int>) async throws {
            enqueue(1, on: queue)
            try await eventually("the first batch applied") { self.entered.load(ordering: .sequentiallyConsistent) }
            for value in 2...4 { enqueue(value, on: queue) }
            release.signal()
            try await waitForAnswers(4)
            #expect(batches.withLock { $0 } == [[1], [2, 3, 4]])
        }
    }

    /// Writers that came three at a time keep committing three at a time: a request alone in the
    /// queue waits for the two that follow it instead of going out with a flush of its own.
    /// (Before, each went out as soon as the writer was free: [5], [6], [7].)
    @Test func aShortBatchWaitsForTheRestOfTheLastOnesSize() async throws {
        let log = Log()
        let queue = log.queue(gatherWindow: .seconds(10))
        try await log.commitABatchOfThree(on: queue)
        log.enqueue(5, on: queue)
        // Time for the writer to pick 5 up: without the wait it would be committed alone by then.
        try await Task.sleep(for: .milliseconds(100))
        log.enqueue(6, on: queue)
        log.enqueue(7, on: queue)
        try await log.waitForAnswers(7)
        #expect(log.batches.withLock { $0 } == [[1], [2, 3, 4], [5, 6, 7]])
    }

    /// The wait is bounded: a request whose companions never come goes out alone after the window.
    @Test func aShortBatchGoesOutWhenTheWindowEnds() async throws {
        let log = Log()
        let queue = log.queue(gatherWindow: .milliseconds(200))
        try await log.commitABatchOfThree(on: queue)
        let start = ContinuousClock.now
        log.enqueue(5, on: queue)
        try await log.waitForAnswers(5)
        #expect(ContinuousClock.now - start >= .milliseconds(150))
        // The queue goes on working after a wait that ran out.
        log.enqueue(6, on: queue)
        try await log.waitForAnswers(6)
        #expect(log.batches.withLock { $0 } == [[1], [2, 3, 4], [5], [6]])
    }

    /// A lone writer (every batch one long) never waits, whatever the window.
    @Test func aLoneWriterDoesNotWait() async throws {
        let queue = WriteQueue<Int, Int>(label: "test.writer", gatherWindow: .seconds(10)) { batch in batch.map { .success($0) } }
        let start = ContinuousClock.now
        for value in 1...20 {
            #expect(try await queue.submit(value) == value)
        }
        #expect(ContinuousClock.now - start < .seconds(5))
    }
}
