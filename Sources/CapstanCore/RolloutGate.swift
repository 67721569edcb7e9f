/// A health condition a rollout step must keep: `check=NAME` (passing on every member),
/// `template-failures=N` and `unhealthy=N` (at most N members), or `metric:NAME<V` (every
/// member's latest host sample; `<`, `<=`, `>`, `>=`).
public enum RolloutGate: Sendable, Hashable, CustomStringConvertible {
    case check(String)
    case templateFailures(Int)
    case unhealthy(Int)
    case metric(Metric, Comparison, Double)

    public enum Metric: String, Sendable, Hashable, CaseIterable {
        case load1, load5, load15
        case cpuPercent = "cpu_pct"
        case memoryUsedPercent = "mem_used_pct"
        case diskUsedPercent = "disk_used_pct"

        /// The value of the metric in a sample; nil when the sample has none (CPU on a first sample).
        public func value(in sample: HostSample) -> Double? {
            switch self {
            case .load1: return sample.load1
            case .load5: return sample.load5
            case .load15: return sample.load15
            case .cpuPercent: return sample.cpuPercent
            case .memoryUsedPercent:
                return sample.memoryTotalBytes > 0 ? Double(sample.memoryUsedBytes) * 100 / Double(sample.memoryTotalBytes) : nil
            case .diskUsedPercent:
                // The fullest filesystem.
                return sample.disks.filter { $0.totalBytes > 0 }.map { Double($0.usedBytes) * 100 / Double($0.totalBytes) }.max()
            }
        }
    }

    public enum Comparison: String, Sendable, Hashable {
        case less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="

        public func holds(_ value: Double, _ limit: Double) -> Bool {
            switch self {
            case .less: value < limit
            case .lessOrEqual: value <= limit
            case .greater: value > limit
            case .greaterOrEqual: value >= limit
            }
        }
    }

    public init(parsing text: String) throws(CapstanError) {
        let gate = text.trimmingCharacters(in: .whitespaces)
        func refuse(_ why: String) -> CapstanError {
            CapstanError(
                .invalidArgument,
                "--gate \(text.quoted): \(why) (gates: check=NAME, template-failures=N, unhealthy=N, metric:load1<4, metric:mem_used_pct<90)")
        }
        if gate.hasPrefix("metric:") {
            let body = gate.dropFirst("metric:".count)
            guard let at = body.firstIndex(where: { "<>".contains($0) }) else { throw refuse("a metric gate needs < or > and a number") }
            let name = String(body[..<at]).trimmingCharacters(in: .whitespaces)
            guard let metric = Metric(rawValue: name) else {
                throw refuse("unknown metric \(name.quoted); known: \(Metric.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            var rest = body[at...]
            let comparison: Comparison
            if rest.hasPrefix("<=") || rest.hasPrefix(">=") {
                comparison = Comparison(rawValue: String(rest.prefix(2)))!
                rest = rest.dropFirst(2)
            } else {
                comparison = Comparison(rawValue: String(rest.prefix(1)))!
                rest = rest.dropFirst()
            }
            let number = rest.trimmingCharacters(in: .whitespaces)
            guard let limit = Double(number), limit.isFinite else { throw refuse("\(number.quoted) is not a number") }
            self = .metric(metric, comparison, limit)
            return
        }
        guard let equals = gate.firstIndex(of: "=") else { throw refuse("expected KIND=VALUE or metric:NAME<VALUE") }
        let kind = String(gate[..<equals])
        let value = String(gate[gate.index(after: equals)...])
        switch kind {
        case "check":
            do { try NodeName.validate(value) } catch { throw refuse(error.message.replacingOccurrences(of: "node name", with: "check name")) }
            self = .check(value)
        case "template-failures", "unhealthy":
            guard let count = Int(value), count >= 0 else { throw refuse("\(value.quoted) is not a count (0 or more)") }
            self = kind == "unhealthy" ? .unhealthy(count) : .templateFailures(count)
        default:
            throw refuse("unknown gate \(kind.quoted)")
        }
    }

    public var description: String {
        switch self {
        case .check(let name): "check=\(name)"
        case .templateFailures(let count): "template-failures=\(count)"
        case .unhealthy(let count): "unhealthy=\(count)"
        case .metric(let metric, let comparison, let limit):
            "metric:\(metric.rawValue)\(comparison.rawValue)\(limit.rounded() == limit ? String(Int64(limit)) : String(limit))"
        }
    }
}
