import ArgumentParser
import Foundation

/// `CapstanBench rollout`: how fast a rollout's candidate reaches its members at 10 %, then
/// every node at 100 %, on N simulated agents, against a plain push to the same N in the same run.
struct RolloutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollout",
        abstract: "Measure a rollout's steps to 10 % then 100 % of N simulated agents against a plain push.",
        discussion: """
            Starts a release Capstan server (and etcd, idle) as child processes, then N simulated agents in \
            this process, each with its own enrollment and WebSocket (those of `agents`). A template binds \
            all of them and reads one data config. Each run starts a rollout over the fleet (steps 10,100, \
            no gates, no timed step), puts a candidate of the data config and times, from sending the put, \
            each member receiving the set at the candidate's revision; then steps to 100 % and times, from \
            sending the step, each other node receiving it; then promotes (every node gets the promoted \
            revision) and, as the peer, writes the data config plainly and times each node receiving it. \
            Also reports the server's CPU per step, per node of the fleet, and the simulated agents' CPU.
            """)

    @OptionGroup var fleet: FleetOptions
    @Option(help: "Rollouts (and plain pushes) measured per count; the report gives medians.") var runs: Int = 3

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
    }

    func run() async throws {
        FileLimit.raise()
        let counts = try fleet.counts
        // Enrollments go 64 at a time; the API calls need a few more connections.
        let plan = fleet.plan(connections: 128)
        let commandLine = (["CapstanBench"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        let loadBefore = ProcessCPU.loadAverage()
        try await BenchServers.with(plan: plan) { servers in
            let machine = MachineInfo.current(dataDirectory: servers.directory)
            progress("machine: \(machine.cpu), \(machine.cores) cores")
            var results: [RolloutResult] = []
            for (round, count) in counts.enumerated() {
                let measurement = RolloutMeasurement(count: count, round: round, runs: runs, servers: servers)
                results.append(try await measurement.run())
            }
            let report = RolloutReport(
                command: commandLine, machine: machine, loadBefore: loadBefore, loadAfter: ProcessCPU.loadAverage(), results: results)
            print(report.markdown)
        }
    }
}
