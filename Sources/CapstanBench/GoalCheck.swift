/// One of the project's performance targets and whether this run met it.
struct GoalCheck: Codable, Sendable {
    var goal: String
    var measured: String
    var met: Bool

    /// The targets that the measurements in `throughput` and `watch` can decide. Throughput is
    /// judged on wrk's figures when wrk measured: the Swift generator shares the benchmark
    /// process's CPU with its HTTP client, which costs etcd's side more.
    static func evaluate(throughput: [ThroughputComparison], watch: WatchComparison, engine: BenchPlan.Engine) -> [GoalCheck] {
        let judged: ThroughputComparison.Generator = throughput.contains { $0.generator == .wrk } ? .wrk : .swift
        let throughput = throughput.filter { $0.generator == judged }
        if engine == .etcd { return evaluateOnEtcd(throughput: throughput, watch: watch) }
        var checks: [GoalCheck] = []
        for comparison in throughput {
            switch (comparison.operation, comparison.clients) {
            case (.put, 16), (.put, 256):
                checks.append(
                    GoalCheck(
                        goal: "put throughput at \(comparison.clients) clients ≥ etcd's (ratio ≥ 1.0, \(judged.title))",
                        measured: "ratio \(Format.ratio(comparison.ratio))", met: comparison.ratio >= 1.0))
            case (.get, _):
                checks.append(
                    GoalCheck(
                        goal: "get throughput at \(comparison.clients) clients ≥ 2× etcd's (ratio ≥ 2.0, \(judged.title))",
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

    /// Capstan on etcd must cost little over the etcd it runs on.
    static func evaluateOnEtcd(throughput: [ThroughputComparison], watch: WatchComparison) -> [GoalCheck] {
        var checks: [GoalCheck] = []
        for comparison in throughput where comparison.operation == .put && comparison.clients == 256 {
            checks.append(
                GoalCheck(
                    goal: "put throughput at 256 clients ≥ 70% of raw etcd's (ratio ≥ 0.70, \(comparison.generator.title))",
                    measured: "ratio \(Format.ratio(comparison.ratio))", met: comparison.ratio >= 0.7))
        }
        let over = watch.capstan.sendToEvent.p99 - watch.etcd.sendToEvent.p99
        checks.append(
            GoalCheck(
                goal: "watch delivery p99 within 2 ms of etcd's own",
                measured: "p99 \(Format.milliseconds(watch.capstan.sendToEvent.p99)) vs \(Format.milliseconds(watch.etcd.sendToEvent.p99))",
                met: watch.capstan.sendToEvent.count > 0 && over <= 2))
        return checks
    }
}
