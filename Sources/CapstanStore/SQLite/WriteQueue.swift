import Dispatch
import Synchronization

/// Serializes writes onto one thread and commits whatever has queued up meanwhile as one batch.
///
/// This is group commit: while one batch waits for its fsync, new requests pile up and go
/// together in the next transaction, so N concurrent writers cost far fewer than N fsyncs.
/// The blocking SQLite work runs on a dedicated dispatch queue, never on the Swift concurrency
/// pool.
final class WriteQueue<Request: Sendable, Outcome: Sendable>: Sendable {
    private struct Item: Sendable {
        var request: Request
        var complete: @Sendable (Result<Outcome, any Error>) -> Void
    }

    private struct State {
        var items: [Item] = []
        var draining = false
    }

    private let state = Mutex(State())
    private let queue: DispatchQueue
    private let maxBatch: Int
    private let apply: @Sendable ([Request]) -> [Result<Outcome, any Error>]

    /// - Parameter apply: commits a batch and answers one result per request, in order.
    init(label: String, maxBatch: Int = 2048, apply: @escaping @Sendable ([Request]) -> [Result<Outcome, any Error>]) {
        self.queue = DispatchQueue(label: label, qos: .userInitiated)
        self.maxBatch = maxBatch
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
        let startDrain = state.withLock { state in
            state.items.append(Item(request: request, complete: complete))
            if state.draining { return false }
            state.draining = true
            return true
        }
        if startDrain {
            queue.async { self.drain() }
        }
    }

    private func drain() {
        while true {
            let batch: [Item] = state.withLock { state in
                if state.items.isEmpty {
                    state.draining = false
                    return []
                }
                let count = min(state.items.count, maxBatch)
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
}
