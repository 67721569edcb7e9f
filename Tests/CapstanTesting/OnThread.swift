import Foundation

/// Runs blocking work (a socket read, a child process waited for) on a thread of its own, so
/// that it holds none of the few threads async code runs on: tests run side by side, and an
/// in-process server they talk to needs those threads to answer.
public func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            continuation.resume(with: Result { try body() })
        }.start()
    }
}
