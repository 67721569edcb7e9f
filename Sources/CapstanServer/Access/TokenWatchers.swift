import Synchronization

/// Requests held open on a caller (watches, long polls, job event streams) waiting to learn that
/// its token stopped working or its role changed.
///
/// `AccessControl` calls `notify` after every change to its cache of tokens and roles; each
/// waiter whose caller no longer checks out is resumed. Registration checks the caller under the
/// same lock as `notify` takes, so a revocation between the check and the registration is seen.
final class TokenWatchers: Sendable {
    private struct Waiter {
        let caller: Caller
        let continuation: CheckedContinuation<Void, Never>
    }

    private let waiters = Mutex<[UInt64: Waiter]>([:])
    private let nextID = Atomic<UInt64>(0)

    /// Returns once `notify` finds the caller no longer stands (or it already does not), or the
    /// task is cancelled.
    func wait(for caller: Caller, stands: @escaping @Sendable (Caller) -> Bool) async {
        let id = nextID.add(1, ordering: .relaxed).newValue
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = waiters.withLock { waiters -> Bool in
                    if Task.isCancelled || !stands(caller) { return true }
                    waiters[id] = Waiter(caller: caller, continuation: continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            waiters.withLock { $0.removeValue(forKey: id) }?.continuation.resume()
        }
    }

    /// Resumes every waiter whose caller `stands` no longer accepts.
    func notify(stands: (Caller) -> Bool) {
        let ended = waiters.withLock { waiters -> [CheckedContinuation<Void, Never>] in
            let ids = waiters.filter { !stands($0.value.caller) }.map(\.key)
            return ids.compactMap { waiters.removeValue(forKey: $0)?.continuation }
        }
        for continuation in ended { continuation.resume() }
    }

    var isEmpty: Bool { waiters.withLock { $0.isEmpty } }
}
