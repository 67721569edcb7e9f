/// One of the project's performance targets and whether this run met it.
struct GoalCheck: Codable, Sendable {
    var goal: String
    var measured: String
    var met: Bool

    /// The targets that the measurements in `throughput` and `watch` can decide.
    static func evaluate(throughput: [ThroughputComparison], watch: WatchComparison) -> [GoalCheck] {
        var checks: [GoalCheck] = []
        for comparison in throughput {
            switch (comparison.operation, comparison.clients) {
            case (.put, 16), (.put, 256):
                checks.append(
                    GoalCheck(
                        goal: "put throughput at \(comparison.clients) clients ≥ etcd's (ratio ≥ 1.0)",
                        measured: "ratio \(Format.ratio(comparison.ratio))", met: comparison.ratio >= 1.0))
            case (.get, _):
                checks.append(
                    GoalCheck(
                        goal: "get throughput at \(comparison.clients) clients ≥ 2× etcd's (ratio ≥ 2.0)",
                        measured: "ratio \(Format.ratio(comparison.ratio))", met: comparison.ratio >= 2.0))
            default:
                break
            }
        }
        let p99 = watch.capstan.sendToEvent.p99
        checks.append(
            GoalCheck(
                goal: "watch delivery p99 < 5 ms on an idle server",
                measured: "p99 \(Format.milliseconds(p99))", met: watch.capstan.sendToEvent.count > 0 && p99 < 5))
        return checks
    }
}
