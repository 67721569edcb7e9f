import Synchronization

/// Requests held open on a token (watches, long polls, job event streams) waiting to learn that
/// it stopped working.
///
/// `AccessControl` calls `notify` after every change to its cache of tokens and roles; each
/// waiter whose token no longer checks out is resumed. Registration checks the token under the
/// same lock as `notify` takes, so a revocation between the check and the registration is seen.
final class TokenWatchers: Sendable {
    private struct Waiter {
        let tokenID: String
        let continuation: CheckedContinuation<Void, Never>
    }

    private let waiters = Mutex<[UInt64: Waiter]>([:])
    private let nextID = Atomic<UInt64>(0)

    /// Returns once `notify` finds the token invalid (or it already is), or the task is cancelled.
    func wait(for tokenID: String, isValid: @escaping @Sendable (String) -> Bool) async {
        let id = nextID.add(1, ordering: .relaxed).newValue
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = waiters.withLock { waiters -> Bool in
                    if Task.isCancelled || !isValid(tokenID) { return true }
                    waiters[id] = Waiter(tokenID: tokenID, continuation: continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            waiters.withLock { $0.removeValue(forKey: id) }?.continuation.resume()
        }
    }

    /// Resumes every waiter whose token `isValid` no longer accepts.
    func notify(isValid: (String) -> Bool) {
        let ended = waiters.withLock { waiters -> [CheckedContinuation<Void, Never>] in
            let ids = waiters.filter { !isValid($0.value.tokenID) }.map(\.key)
            return ids.compactMap { waiters.removeValue(forKey: $0)?.continuation }
        }
        for continuation in ended { continuation.resume() }
    }

    var isEmpty: Bool { waiters.withLock { $0.isEmpty } }
}
