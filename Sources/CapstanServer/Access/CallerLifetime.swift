import CapstanCore
import Foundation

/// How long a request may go on acting as its caller: until the token is revoked, its role
/// removed or changed (any change: the client authorizes afresh by reconnecting), or it expires. Requests held open (watches, long polls, job event streams) end then,
/// so that a revoked token stops receiving at once, on every replica as soon as its cache learns.
struct CallerLifetime: Sendable {
    let access: AccessControl
    let caller: Caller

    /// Nil while the token works; why it stopped, once it has.
    func ended() -> CapstanError? {
        if let expiresAt = caller.expiresAt, expiresAt <= Date() { return expired(expiresAt) }
        return access.stands(caller) ? nil : revoked
    }

    /// Waits until the token stops working; answers why. Throws when cancelled.
    func end() async throws -> CapstanError {
        try await withThrowingTaskGroup(of: CapstanError.self) { group in
            group.addTask {
                await access.watchers.wait(for: caller) { access.stands($0) }
                try Task.checkCancellation()
                return revoked
            }
            if let expiresAt = caller.expiresAt {
                group.addTask {
                    try await Task.sleep(for: .milliseconds(max(0, Int64(expiresAt.timeIntervalSinceNow * 1000))))
                    return expired(expiresAt)
                }
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    /// Runs `work` (a long poll's wait) while the token works.
    /// - Throws: `unauthorized` as soon as the token stops working, whether or not `work` is done.
    func during<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) async throws -> T {
        let result = try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await work() }
            group.addTask { throw try await end() }
            defer { group.cancelAll() }
            return try await group.next()!
        }
        if let reason = ended() { throw reason }
        return result!
    }

    private var revoked: CapstanError {
        CapstanError(.unauthorized, "token \(caller.tokenID) was revoked, or its role changed or removed: reconnect to authorize afresh")
    }

    private func expired(_ date: Date) -> CapstanError {
        CapstanError(.unauthorized, "token \(caller.tokenID) expired at \(ISO8601DateFormatter().string(from: date))")
    }
}
