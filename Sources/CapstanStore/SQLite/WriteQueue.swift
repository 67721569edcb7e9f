import Dispatch
import Synchronization

/// Serializes writes onto one thread and commits whatever has queued up meanwhile as one batch.
///
/// This is group commit: while one batch waits for its fsync, new requests pile up and go
/// together in the next transaction, so N concurrent writers cost far fewer than N fsyncs.
/// The blocking SQLite work runs on a dedicated dispatch queue, never on the Swift concurrency
/// pool.
///
/// A batch shorter than the one before waits up to `gatherWindow` for the rest of it: writers
/// that keep coming N at a time (N clients, each waiting for its answer before writing again)
/// then commit N at a time instead of drifting into several short batches, each with its own
/// fsync, WAL pages and thread wake-ups. A lone writer never waits (its batches are all 1 long).
final class WriteQueue<Request: Sendable, Outcome: Sendable>: Sendable {
    private struct Item: Sendable {
        var request: Request
        var complete: @Sendable (Result<Outcome, any Error>) -> Void
    }

    private struct State {
        var items: [Item] = []
        var draining = false
        /// Requests in the last batch taken.
        var lastBatch = 0
        /// While the writer waits for a batch to fill: the count that wakes it; 0 otherwise.
        var gatherTarget = 0
    }

    private let state = Mutex(State())
    /// Signalled once when the queue reaches `gatherTarget`.
    private let gathered = DispatchSemaphore(value: 0)
    private let queue: DispatchQueue
    private let maxBatch: Int
    private let gatherWindow: DispatchTimeInterval?
    private let apply: @Sendable ([Request]) -> [Result<Outcome, any Error>]

    /// - Parameters:
    ///   - gatherWindow: how long a short batch waits for the rest; zero never waits.
    ///   - apply: commits a batch and answers one result per request, in order.
    init(
        label: String, maxBatch: Int = 2048, gatherWindow: Duration = .zero,
        apply: @escaping @Sendable ([Request]) -> [Result<Outcome, any Error>]
    ) {
        self.queue = DispatchQueue(label: label, qos: .userInitiated)
        self.maxBatch = maxBatch
        let nanoseconds = gatherWindow.components.seconds * 1_000_000_000 + gatherWindow.components.attoseconds / 1_000_000_000
        self.gatherWindow = nanoseconds > 0 ? .nanoseconds(Int(nanoseconds)) : nil
        self.apply = apply
    }

    func submit(_ request: Request) async throws -> Outcome {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(request) { continuation.resume(with: $0) }
        }
    }

    /// Puts `request` in the commit order before returning; `complete` runs once it is committed
    /// (or failed). A request enqueued before another is applied before it.
    func enqueue(_ request: Request, complete: @escaping @Sendable (Result<Outcome, any Error>) -> Void) {
        let (startDrain, wake) = state.withLock { state -> (Bool, Bool) in
            state.items.append(Item(request: request, complete: complete))
            var wake = false
            if state.gatherTarget > 0, state.items.count >= state.gatherTarget {
                state.gatherTarget = 0
                wake = true
            }
            if state.draining { return (false, wake) }
            state.draining = true
            return (true, wake)
        }
        if wake { gathered.signal() }
        if startDrain {
            queue.async { self.drain() }
        }
    }

    private func drain() {
        while true {
            gather()
            let batch: [Item] = state.withLock { state in
                if state.items.isEmpty {
                    state.draining = false
                    return []
                }
                let count = min(state.items.count, maxBatch)
                state.lastBatch = count
                defer { state.items.removeFirst(count) }
                return Array(state.items.prefix(count))
            }
            if batch.isEmpty { return }
            let results = apply(batch.map(\.request))
            for (item, result) in zip(batch, results) {
                item.complete(result)
            }
        }
    }

    /// Waits up to the window while fewer requests are queued than the last batch had.
    private func gather() {
        guard let gatherWindow else { return }
        let target = state.withLock { state -> Int in
            guard !state.items.isEmpty, state.items.count < min(state.lastBatch, maxBatch) else { return 0 }
            state.gatherTarget = min(state.lastBatch, maxBatch)
            return state.gatherTarget
        }
        guard target > 0 else { return }
        if gathered.wait(timeout: .now() + gatherWindow) == .timedOut {
            let signalled = state.withLock { state -> Bool in
                // Reset by `enqueue` only when it signals: that signal is on its way.
                if state.gatherTarget == 0 { return true }
                state.gatherTarget = 0
                return false
            }
            if signalled { gathered.wait() }
        }
    }
}
