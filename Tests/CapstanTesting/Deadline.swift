import Synchronization

/// Waits until `condition` holds, checking every `interval`, failing after `timeout`.
///
/// For conditions that have no event to await (a file appearing, a process exiting).
public func eventually(
    timeout: Duration = .seconds(10),
    interval: Duration = .milliseconds(20),
    _ what: @autoclosure () -> String = "condition",
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: interval)
    }
    throw TimeoutError(what: what(), timeout: timeout)
}

public struct TimeoutError: Error, CustomStringConvertible {
    public var what: String
    public var timeout: Duration
    public var description: String { "timed out after \(timeout) waiting for \(what)" }

    public init(what: String, timeout: Duration) {
        self.what = what
        self.timeout = timeout
    }
}

/// Runs `body`, failing with `TimeoutError` if it takes longer than `timeout`.
///
/// Returns at the timeout even when `body` ignores cancellation (waiting for a process that
/// will not exit): `body` is cancelled and left to finish on its own.
public func withTimeout<T: Sendable>(
    _ timeout: Duration,
    _ what: @autoclosure @escaping @Sendable () -> String = "operation",
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = Race<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            race.start(continuation)
            let work = Task {
                do { race.finish(.success(try await body())) } catch { race.finish(.failure(error)) }
            }
            let timer = Task {
                guard (try? await Task.sleep(for: timeout)) != nil else { return }
                race.finish(.failure(TimeoutError(what: what(), timeout: timeout)))
            }
            race.track(work, timer)
        }
    } onCancel: {
        race.finish(.failure(CancellationError()))
    }
}

/// The first of a body and its timer to finish answers; the other is cancelled.
private final class Race<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var tasks: [Task<Void, Never>] = []
        var finished = false
    }

    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<T, any Error>) {
        let cancelled = state.withLock { state in
            if !state.finished { state.continuation = continuation }
            return state.finished
        }
        // Cancelled before it started.
        if cancelled { continuation.resume(throwing: CancellationError()) }
    }

    func track(_ tasks: Task<Void, Never>...) {
        let finished = state.withLock { state in
            state.tasks = tasks
            return state.finished
        }
        if finished { tasks.forEach { $0.cancel() } }
    }

    func finish(_ result: Result<T, any Error>) {
        let (continuation, tasks) = state.withLock { state in
            defer {
                state.continuation = nil
                state.finished = true
            }
            return (state.finished ? nil : state.continuation, state.tasks)
        }
        guard let continuation else { return }
        tasks.forEach { $0.cancel() }
        continuation.resume(with: result)
    }
}
