/// Percentiles of a set of latencies, in milliseconds.
struct LatencySummary: Codable, Sendable, Equatable {
    var count: Int
    var p50: Double
    var p90: Double
    var p99: Double
    var max: Double

    /// Summarizes latencies given in nanoseconds (negative values allowed: an event may arrive
    /// before the acknowledgement of the write that caused it).
    init(nanoseconds samples: [Int64]) {
        let sorted = samples.sorted()
        count = sorted.count
        p50 = Self.percentile(0.50, of: sorted)
        p90 = Self.percentile(0.90, of: sorted)
        p99 = Self.percentile(0.99, of: sorted)
        max = Self.milliseconds(sorted.last ?? 0)
    }

    init(count: Int, p50: Double, p90: Double, p99: Double, max: Double) {
        self.count = count
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.max = max
    }

    /// Nearest-rank percentile: the smallest sample with at least `fraction` of all at or below it.
    private static func percentile(_ fraction: Double, of sorted: [Int64]) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((fraction * Double(sorted.count)).rounded(.up))
        return milliseconds(sorted[Swift.max(0, Swift.min(sorted.count - 1, rank - 1))])
    }

    private static func milliseconds(_ nanoseconds: Int64) -> Double {
        Double(nanoseconds) / 1e6
    }
}
