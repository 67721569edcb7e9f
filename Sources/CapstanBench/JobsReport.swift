import Foundation

/// One simulated agent count's figures: `runs` jobs of `true` on all of them.
struct SimulatedJobsResult: Sendable {
    var count: Int
    /// Per job: from sending the POST to each node's `succeeded` event.
    var nodes: [LatencySummary] = []
    /// Per job: from sending the POST to the `done` event.
    var done: [Duration] = []
    /// Per job: the server's CPU time from the POST to `done` (heartbeats included).
    var serverCPU: [Double] = []

    var doneMedian: Double { Median.of(done.map(\.seconds)) }
}

/// The markdown report of `CapstanBench jobs`.
struct JobsReport: Sendable {
    var command: String
    var machine: MachineInfo
    var ansibleVersion: String?
    var loadBefore: String
    var loadAfter: String
    var simulated: [SimulatedJobsResult]
    var race: AnsibleRaceResult?

    /// The 10,000-agent time limit of the simulated part.
    static let doneLimit = 2.0
    /// How many times faster than Ansible the real agents must be.
    static let ratioGoal = 10.0

    var markdown: String {
        var lines = [
            "## Jobs: a trivial command on N agents, and against Ansible, \(ISO8601DateFormatter().string(from: Date()))", "",
            "- Command: `\(command)`",
            "- CPU: \(machine.cpu), \(machine.cores) cores; memory \(machine.memoryGiB) GiB",
            "- Kernel: \(machine.kernel); OS: \(machine.operatingSystem)",
        ]
        if let ansibleVersion { lines.append("- Ansible: \(ansibleVersion)") }
        if let login = race?.sshLogin {
            let seconds = String(format: "%.3f s", login)
            lines.append("- One SSH login to 127.0.0.1 running `true`, without connection sharing: \(seconds) (median of 3)")
        }
        lines += ["- Load average (1, 5, 15 min) before the run: \(loadBefore); after: \(loadAfter)"]
        if !simulated.isEmpty {
            lines += [
                "", "### Simulated agents: `true` on every agent, from the POST", "",
                "| Agents | Node succeeded p50 | p99 | max | Job done (all results stored) | Runs (done) | Server CPU per job |",
                "|---:|---:|---:|---:|---:|---|---:|",
            ]
            for result in simulated {
                func median(_ value: (LatencySummary) -> Double) -> String { Format.milliseconds(Median.of(result.nodes.map(value))) }
                let runs = result.done.map { Format.milliseconds($0.seconds * 1000) }.joined(separator: ", ")
                let cpu = result.serverCPU.isEmpty ? "-" : String(format: "%.0f ms", Median.of(result.serverCPU) * 1000)
                lines.append(
                    "| \(result.count) | \(median(\.p50)) | \(median(\.p99)) | \(median(\.max)) | "
                        + "\(Format.milliseconds(result.doneMedian * 1000)) | \(runs) | \(cpu) |")
            }
        }
        if let race {
            func runs(_ values: [Duration]) -> String { values.map { AnsibleRace.seconds($0) }.joined(separator: ", ") }
            lines += [
                "", "### \(race.agents) real agents vs Ansible: `true` on every node, wall time of the command", "",
                "| System | Command | Median | Runs |",
                "|---|---|---:|---|",
                "| Capstan | `\(race.capstanCommand)` | \(AnsibleRace.seconds(race.capstanMedian)) | \(runs(race.capstan)) |",
                "| Ansible | `\(race.ansibleCommand)` | \(AnsibleRace.seconds(race.ansibleMedian)) | \(runs(race.ansible)) |",
                "| **Ansible / Capstan** | | **\(String(format: "%.1f×", race.ratio))** | |",
            ]
        }
        let checks = targets
        if !checks.isEmpty {
            lines += ["", "### Targets", "", "| Target | Measured | Met |", "|---|---|---|"]
            lines += checks.map { "| \($0.goal) | \($0.measured) | \($0.met ? "yes" : "**no**") |" }
        }
        return lines.joined(separator: "\n")
    }

    /// The targets this run's counts can decide.
    var targets: [GoalCheck] {
        var checks: [GoalCheck] = []
        for result in simulated where result.count == 10_000 {
            let slowest = result.done.map(\.seconds).max() ?? 0
            checks.append(
                GoalCheck(
                    goal: "10,000 simulated agents: the trivial job completes with all results stored in under 2 s",
                    measured: String(format: "median %.2f s (slowest run %.2f s)", result.doneMedian, slowest),
                    met: result.doneMedian < Self.doneLimit))
        }
        if let race {
            let times = "\(AnsibleRace.seconds(race.ansibleMedian)) vs \(AnsibleRace.seconds(race.capstanMedian))"
            checks.append(
                GoalCheck(
                    goal: "\(race.agents) real agents: at least 10× faster than Ansible in the same run",
                    measured: String(format: "%.1f× ", race.ratio) + "(\(times))", met: race.ratio >= Self.ratioGoal))
        }
        return checks
    }
}
