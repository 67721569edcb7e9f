import CapstanCore
import Foundation
import Synchronization

/// The host metrics of the nodes whose agents are connected here, in memory: each node's latest
/// sample in full, and the last hour as compact points (about 40 bytes each: 240 points, 10 KB,
/// per node at the default 15 s).
public final class NodeMetrics: Sendable {
    static let window: TimeInterval = 3600
    /// At most this many points per node, whatever times an agent's samples carry.
    static let maxPoints = 720
    /// A node whose latest sample is older than this is left out of `latest()`: its agent went
    /// away (or to another replica).
    let staleAfter: TimeInterval

    public init(staleAfter: Duration = .seconds(45)) {
        self.staleAfter = Double(staleAfter.components.seconds) + Double(staleAfter.components.attoseconds) / 1e18
    }

    private struct Series {
        var latest: HostSample
        var points: [Point]
        /// When the latest sample came, by this server's clock.
        var received = Date()
    }

    /// A history point in 32-bit fields: seconds since 2001, CPU and rates as Float.
    private struct Point {
        var time: UInt32
        var cpu: Float
        var load1: Float
        var memoryUsed: Int64
        var rx: Float
        var tx: Float

        init(_ sample: HostSample) {
            time = UInt32(clamping: Int(sample.time.timeIntervalSinceReferenceDate))
            cpu = sample.cpuPercent.map(Float.init) ?? .nan
            load1 = Float(sample.load1)
            memoryUsed = sample.memoryUsedBytes
            let rates = sample.networkRates
            rx = rates.rx.map(Float.init) ?? .nan
            tx = rates.tx.map(Float.init) ?? .nan
        }

        var host: HostPoint {
            func optional(_ value: Float) -> Double? { value.isNaN ? nil : Double(value) }
            return HostPoint(
                time: Date(timeIntervalSinceReferenceDate: TimeInterval(time)), cpuPercent: optional(cpu), load1: Double(load1),
                memoryUsedBytes: memoryUsed, rxBytesPerSecond: optional(rx), txBytesPerSecond: optional(tx))
        }
    }

    private let series = Mutex<[String: Series]>([:])

    func record(_ sample: HostSample, from node: String) {
        let cutoff = UInt32(clamping: Int(sample.time.timeIntervalSinceReferenceDate - Self.window))
        series.withLock { series in
            var entry = series[node] ?? Series(latest: sample, points: [])
            entry.latest = sample
            entry.points.append(Point(sample))
            if let first = entry.points.firstIndex(where: { $0.time >= cutoff }), first > 0 { entry.points.removeFirst(first) }
            if entry.points.count > Self.maxPoints { entry.points.removeFirst(entry.points.count - Self.maxPoints) }
            entry.received = Date()
            series[node] = entry
        }
    }

    func info(_ node: String) -> NodeMetricsInfo {
        series.withLock { series in
            NodeMetricsInfo(node: node, latest: series[node]?.latest, history: series[node]?.points.map(\.host) ?? [])
        }
    }

    /// Every node's latest sample, by node name, leaving out nodes that stopped sending.
    func latest(now: Date = Date()) -> [(node: String, sample: HostSample)] {
        series.withLock { series in
            series.filter { now.timeIntervalSince($0.value.received) <= staleAfter }.map { ($0.key, $0.value.latest) }
                .sorted { $0.node < $1.node }
        }
    }

    func forget(_ node: String) {
        series.withLock { _ = $0.removeValue(forKey: node) }
    }
}
