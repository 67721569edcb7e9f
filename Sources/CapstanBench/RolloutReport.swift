import Foundation

/// The markdown report of `CapstanBench rollout`, with the targets of the rollout issue.
struct RolloutReport: Sendable {
    var command: String
    var machine: MachineInfo
    var loadBefore: String
    var loadAfter: String
    var results: [RolloutResult]

    /// The step to 100 % must reach every node within this many milliseconds.
    static let stepLimit = 1000.0
    /// "The same as a plain push": the step's slowest node at most this many times the plain push's.
    static let samePushRatio = 1.25
    /// "Linear in N": the server's CPU per fleet node at the largest count at most this many
    /// times that at the smallest.
    static let linearRatio = 1.25

    var markdown: String {
        var lines = [
            "## Rollouts: a step to 10 % then 100 % of N agents, against a plain push, \(ISO8601DateFormatter().string(from: Date()))", "",
            "- Command: `\(command)`",
            "- CPU: \(machine.cpu), \(machine.cores) cores; memory \(machine.memoryGiB) GiB",
            "- Kernel: \(machine.kernel); OS: \(machine.operatingSystem)",
            "- Load average (1, 5, 15 min) before the run: \(loadBefore); after: \(loadAfter)", "",
            "| Agents | Push | Nodes timed | p50 | p99 | max | runs (max) | Server CPU | Server CPU, all its work | "
                + "… per fleet node | Agents' CPU |",
            "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
        ]
        for result in results {
            for push in result.pushes {
                let samples = push.samples
                let all = RolloutResult.median(samples, \PushSample.serverFullCPU)
                lines.append(
                    "| \(result.count) | \(push.name) | \(samples.first?.latency.count ?? 0) | "
                        + "\(Format.milliseconds(RolloutResult.median(samples, \LatencySummary.p50))) | "
                        + "\(Format.milliseconds(RolloutResult.median(samples, \LatencySummary.p99))) | "
                        + "\(Format.milliseconds(RolloutResult.median(samples, \LatencySummary.max))) | "
                        + "\(samples.map { Format.milliseconds($0.latency.max) }.joined(separator: ", ")) | "
                        + "\(Self.cpu(RolloutResult.median(samples, \PushSample.serverCPU))) | \(Self.cpu(all)) | "
                        + "\(Self.cpuPerNode(all, count: result.count)) | \(Self.cpu(RolloutResult.median(samples, \PushSample.agentsCPU))) |")
            }
        }
        lines += ["", "### Targets", "", "| Target | Measured | Met |", "|---|---|---|"]
        lines += targets.map { "| \($0.goal) | \($0.measured) | \($0.met ? "yes" : "**no**") |" }
        return lines.joined(separator: "\n")
    }

    /// The issue's targets: per count, the step to 100 % within a second and as fast as a plain
    /// push; across counts, the server's CPU per step linear in N.
    var targets: [GoalCheck] {
        var checks: [GoalCheck] = []
        for result in results {
            let step = RolloutResult.median(result.everyone, \LatencySummary.max)
            let plain = RolloutResult.median(result.plain, \LatencySummary.max)
            checks.append(
                GoalCheck(
                    goal: "\(result.count) agents: the step to 100 % reaches every node within 1 s (median of the runs' max)",
                    measured: Format.milliseconds(step), met: step <= Self.stepLimit))
            let ratio = plain > 0 ? step / plain : .infinity
            checks.append(
                GoalCheck(
                    goal: "\(result.count) agents: the step to 100 % as fast as a plain push (max within \(Format.ratio(Self.samePushRatio))×)",
                    measured: "\(Format.milliseconds(step)) vs \(Format.milliseconds(plain)): \(Format.ratio(ratio))×",
                    met: ratio <= Self.samePushRatio))
        }
        let ordered = results.sorted { $0.count < $1.count }
        if let small = ordered.first, let large = ordered.last, large.count > small.count {
            for (name, samples) in [("10 %", \RolloutResult.tenth), ("100 %", \RolloutResult.everyone)] {
                guard let smallCPU = RolloutResult.median(small[keyPath: samples], \PushSample.serverFullCPU),
                    let largeCPU = RolloutResult.median(large[keyPath: samples], \PushSample.serverFullCPU), smallCPU > 0
                else { continue }
                let ratio = (largeCPU / Double(large.count)) / (smallCPU / Double(small.count))
                checks.append(
                    GoalCheck(
                        goal: "server CPU of the step to \(name) linear in N: per fleet node at \(large.count) "
                            + "at most \(Format.ratio(Self.linearRatio))× that at \(small.count)",
                        measured: "\(Self.cpuPerNode(largeCPU, count: large.count)) vs \(Self.cpuPerNode(smallCPU, count: small.count)): "
                            + "\(Format.ratio(ratio))×",
                        met: ratio <= Self.linearRatio))
            }
        }
        return checks
    }

    private static func cpu(_ seconds: Double?) -> String {
        seconds.map { String(format: "%.0f ms", $0 * 1000) } ?? "-"
    }

    private static func cpuPerNode(_ seconds: Double?, count: Int) -> String {
        seconds.map { String(format: "%.1f µs", $0 * 1e6 / Double(count)) } ?? "-"
    }
}
