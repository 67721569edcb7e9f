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

    @Option(help: "Agent counts, comma-separated.") var agents: String = "1000,10000"
    @Option(help: "Rollouts (and plain pushes) measured per count; the report gives medians.") var runs: Int = 3
    @Option(help: "Directory for the servers' data (default: the system temporary directory).") var workDir: String?
    @Option(help: "Path of the etcd binary.") var etcd: String = "/usr/bin/etcd"
    @Option(help: "CapstanBench binary to run as the Capstan server (default: this one), to compare two builds' servers with the same simulated agents.")
    var serverBinary: String?

    var counts: [Int] {
        get throws {
            let values = agents.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ $0 > 0 }) else { throw ValidationError("--agents must be positive counts") }
            return values
        }
    }

    func validate() throws {
        _ = try counts
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
    }

    func run() async throws {
        FileLimit.raise()
        let counts = try self.counts
        var plan = BenchPlan()
        // Enrollments go 64 at a time; the API calls need a few more connections.
        plan.clientCounts = [128]
        plan.etcdPath = etcd
        plan.serverExecutable = serverBinary
        if let workDir { plan.workDirectory = workDir }
        let commandLine = (["CapstanBench"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        let loadBefore = ProcessCPU.loadAverage()
        try await BenchServers.with(plan: plan) { servers in
            let machine = MachineInfo.current(dataDirectory: servers.directory)
            Self.progress("machine: \(machine.cpu), \(machine.cores) cores")
            var results: [RolloutResult] = []
            for (round, count) in counts.enumerated() {
                let measurement = RolloutMeasurement(count: count, round: round, runs: runs, servers: servers, progress: Self.progress)
                results.append(try await measurement.run())
            }
            let report = RolloutReport(
                command: commandLine, machine: machine, loadBefore: loadBefore, loadAfter: ProcessCPU.loadAverage(), results: results)
            print(report.markdown)
        }
    }

    @Sendable static func progress(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
