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
public func withTimeout<T: Sendable>(
    _ timeout: Duration,
    _ what: String = "operation",
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw TimeoutError(what: what, timeout: timeout)
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}
