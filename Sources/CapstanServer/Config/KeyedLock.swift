/// Serializes work per key inside one server process.
///
/// Writers of the same config key queue here instead of racing each other's compare-and-swap:
/// under contention the optimistic loop would otherwise burn attempts. Writers through other
/// server replicas still race, and the transaction's compare catches that.
final class KeyedLock: Sendable {
    private actor Stripe {
        private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]

        func lock(_ key: String) async {
            if waiters[key] == nil {
                waiters[key] = []
                return
            }
            await withCheckedContinuation { waiters[key, default: []].append($0) }
        }

        func unlock(_ key: String) {
            guard var queue = waiters[key], !queue.isEmpty else {
                waiters[key] = nil
                return
            }
            let next = queue.removeFirst()
            waiters[key] = queue
            next.resume()
        }
    }

    private let stripes: [Stripe]

    init(stripes: Int = 16) {
        self.stripes = (0..<stripes).map { _ in Stripe() }
    }

    func withLock<T: Sendable>(_ key: String, _ body: () async throws -> T) async throws -> T {
        let stripe = stripes[Int(UInt(bitPattern: key.hashValue) % UInt(stripes.count))]
        await stripe.lock(key)
        do {
            let result = try await body()
            await stripe.unlock(key)
            return result
        } catch {
            await stripe.unlock(key)
            throw error
        }
    }
}
