import Synchronization

/// Serializes work per key inside one server process.
///
/// Writers of the same config key queue here instead of racing each other's compare-and-swap:
/// under contention the optimistic loop would otherwise burn attempts. Writers through other
/// server replicas still race, and the transaction's compare catches that. The uncontended path
/// takes a lock and returns without suspending.
final class KeyedLock: Sendable {
    /// Held keys, each with the writers waiting for it in arrival order.
    private let held = Mutex<[String: [CheckedContinuation<Void, Never>]]>([:])

    func withLock<T: Sendable>(_ key: String, _ body: () async throws -> T) async throws -> T {
        await lock(key)
        do {
            let result = try await body()
            unlock(key)
            return result
        } catch {
            unlock(key)
            throw error
        }
    }

    private func lock(_ key: String) async {
        let acquired = held.withLock { held -> Bool in
            if held[key] == nil {
                held[key] = []
                return true
            }
            return false
        }
        if acquired { return }
        await withCheckedContinuation { continuation in
            let acquiredMeanwhile = held.withLock { held -> Bool in
                if held[key] == nil {
                    held[key] = []
                    return true
                }
                held[key]?.append(continuation)
                return false
            }
            if acquiredMeanwhile { continuation.resume() }
        }
    }

    /// Hands the key to the next waiter, or frees it.
    private func unlock(_ key: String) {
        let next = held.withLock { held -> CheckedContinuation<Void, Never>? in
            guard var waiters = held[key], !waiters.isEmpty else {
                held[key] = nil
                return nil
            }
            let next = waiters.removeFirst()
            held[key] = waiters
            return next
        }
        next?.resume()
    }
}
