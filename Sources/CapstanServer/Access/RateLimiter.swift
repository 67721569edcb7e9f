import Foundation
import Synchronization

/// Token buckets by key (a client address, a token id): each holds up to `burst` tokens and
/// refills at `rate` per second; a request takes one, and without one it waits `retryAfter`.
///
/// Memory stays bounded: past `maxKeys` buckets, full ones (keys idle long enough to refill)
/// are dropped first, then the oldest.
public final class RateLimiter: Sendable {
    /// A limit: `rate` per second with room for `burst` at once; a rate of 0 turns it off.
    public struct Limit: Sendable, Hashable {
        public var rate: Double
        public var burst: Double

        public init(rate: Double, burst: Double) {
            self.rate = rate
            self.burst = max(1, burst)
        }

        public static let off = Limit(rate: 0, burst: 1)

        public var isOff: Bool { rate <= 0 }
    }

    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    public let limit: Limit
    private let maxKeys: Int
    private let buckets = Mutex<[String: Bucket]>([:])

    public init(_ limit: Limit, maxKeys: Int = 100_000) {
        self.limit = limit
        self.maxKeys = maxKeys
    }

    /// Takes a token for `key`: nil when one was there, else how long until one will be.
    public func take(_ key: String, cost: Double = 1, now: ContinuousClock.Instant = .now) -> Duration? {
        guard !limit.isOff else { return nil }
        return buckets.withLock { buckets in
            var bucket = buckets[key] ?? Bucket(tokens: limit.burst, updated: now)
            refill(&bucket, now: now)
            defer {
                if buckets[key] == nil, buckets.count >= maxKeys { evict(&buckets, now: now) }
                buckets[key] = bucket
            }
            if bucket.tokens >= cost {
                bucket.tokens -= cost
                return nil
            }
            return .seconds((cost - bucket.tokens) / limit.rate)
        }
    }

    /// How long `key` must wait before a request would pass, without taking a token.
    public func wait(_ key: String, now: ContinuousClock.Instant = .now) -> Duration? {
        guard !limit.isOff else { return nil }
        return buckets.withLock { buckets in
            guard var bucket = buckets[key] else { return nil }
            refill(&bucket, now: now)
            return bucket.tokens >= 1 ? nil : .seconds((1 - bucket.tokens) / limit.rate)
        }
    }

    private func refill(_ bucket: inout Bucket, now: ContinuousClock.Instant) {
        let elapsed = now - bucket.updated
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        bucket.tokens = min(limit.burst, bucket.tokens + seconds * limit.rate)
        bucket.updated = now
    }

    private func evict(_ buckets: inout [String: Bucket], now: ContinuousClock.Instant) {
        let fullAfter = Duration.seconds(limit.burst / limit.rate)
        buckets = buckets.filter { now - $0.value.updated < fullAfter }
        if buckets.count >= maxKeys, let oldest = buckets.min(by: { $0.value.updated < $1.value.updated })?.key {
            buckets.removeValue(forKey: oldest)
        }
    }

    /// Seconds for a `Retry-After` header: whole, at least 1.
    public static func retryAfterSeconds(_ wait: Duration) -> Int {
        max(1, Int((Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18).rounded(.up)))
    }
}
