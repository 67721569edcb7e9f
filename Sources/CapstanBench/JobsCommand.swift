import ArgumentParser
import CapstanClient
import CapstanCore
import Foundation

/// `CapstanBench jobs`: how long a trivial job takes on N simulated agents, and on real agents
/// against Ansible doing the same over SSH, in the same run.
struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "Measure a trivial job on N simulated agents, and on real agents against Ansible.",
        discussion: """
            Starts a release Capstan server (and etcd, idle) as child processes. First, for each count, N \
            simulated agents in this process, each with its own enrollment and WebSocket, answering every \
            job at once; each run posts a job running `true` on all of them and times, from sending the \
            POST, each node's succeeded event and the job's done event (every result stored). Then N real \
            `capstan agent` processes: each run times `capstan job run -- true` on them and `ansible all \
            -m command -a true` on as many aliases of this machine's sshd, alternating. The Ansible part \
            needs ansible, an sshd on 127.0.0.1:22 and a key it accepts (scripts/bench-jobs.sh sets them up).
            """)

    @Option(help: "Simulated agent counts, comma-separated (0: skip the simulated part).") var agents: String = "1000,10000"
    @Option(help: "Jobs measured per count, and runs of each system against Ansible; the report gives medians.") var runs: Int = 5
    @Option(help: "Real agent processes raced against Ansible (0: skip that part).") var realAgents: Int = 50
    @Option(help: "Directory for the servers' and agents' data (default: the system temporary directory).") var workDir: String?
    @Option(help: "Path of the etcd binary.") var etcd: String = "/usr/bin/etcd"
    @Option(help: "The capstan binary of the real agents and the CLI (default: capstan beside this benchmark's binary).")
    var capstan: String?
    @Option(help: "The ansible command.") var ansible: String = "ansible"
    @Option(help: "Private key Ansible logs in with (default: ~/.ssh/capstan-bench).") var sshKey: String?

    var counts: [Int] {
        get throws {
            let values = agents.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ ($0 ?? -1) >= 0 }) else {
                throw ValidationError("--agents must be counts separated by commas (0 skips the simulated part)")
            }
            return values.compactMap { $0 }.filter { $0 > 0 }
        }
    }

    func validate() throws {
        _ = try counts
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard realAgents >= 0 else { throw ValidationError("--real-agents cannot be negative") }
    }

    func run() async throws {
        FileLimit.raise()
        let counts = try self.counts
        let race = realAgents > 0 ? try ansibleRace() : nil
        var plan = BenchPlan()
        // Enrollments go 64 at a time; the job's event stream holds one more connection.
        plan.clientCounts = [128]
        plan.etcdPath = etcd
        if let workDir { plan.workDirectory = workDir }
        let commandLine = (["CapstanBench"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        let loadBefore = ProcessCPU.loadAverage()
        try await BenchServers.with(plan: plan) { servers in
            let machine = MachineInfo.current(dataDirectory: servers.directory)
            progress("machine: \(machine.cpu), \(machine.cores) cores")
            var simulated: [SimulatedJobsResult] = []
            for (round, count) in counts.enumerated() {
                simulated.append(try await measureSimulated(count: count, round: round, servers: servers))
            }
            let raced = try await race?.run(servers: servers, progress: progress)
            let report = JobsReport(
                command: commandLine, machine: machine, ansibleVersion: await race?.ansibleVersion(directory: servers.directory),
                loadBefore: loadBefore, loadAfter: ProcessCPU.loadAverage(), simulated: simulated, race: raced)
            print(report.markdown)
        }
    }

    /// The Ansible part, with every path it needs checked before anything starts.
    private func ansibleRace() throws -> AnsibleRace {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let capstanPath = capstan ?? URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("capstan").path
        guard FileManager.default.isExecutableFile(atPath: capstanPath) else {
            throw ValidationError(
                "no capstan binary at \(capstanPath): build it (swift build -c release --product capstan) or give --capstan")
        }
        guard let ansiblePath = TimedCommand.which(ansible) else {
            throw ValidationError("\(ansible) is not installed (apt-get install ansible), or give --real-agents 0")
        }
        let home = FileManager.default.homeDirectoryForCurrentUser.path
        let key = sshKey ?? home + "/.ssh/capstan-bench"
        guard FileManager.default.fileExists(atPath: key) else {
            throw ValidationError("no SSH key at \(key) for Ansible: scripts/bench-jobs.sh makes one, or give --ssh-key")
        }
        return AnsibleRace(
            agents: realAgents, runs: runs, capstan: capstanPath, ansible: ansiblePath, sshKey: key,
            user: ProcessInfo.processInfo.userName)
    }

    private func measureSimulated(count: Int, round: Int, servers: BenchServers) async throws -> SimulatedJobsResult {
        let capstanPID = try servers.pid(of: servers.capstan)
        let baseURL = servers.capstan.baseURL
        let fleet = try await servers.settledFleet(count: count, round: round)
        let api = CapstanClient(
            server: baseURL, author: "bench", token: ServeCommand.benchRootToken, httpClient: servers.client, watchHTTPClient: servers.client)
        let spec = JobSpec(selector: "fleet=\(fleet.label)", command: ["true"])
        var result = SimulatedJobsResult(count: count)
        for run in 1...runs {
            try await Task.sleep(for: .seconds(1))
            let cpuBefore = ProcessCPU.seconds(pid: capstanPID)
            let timeline = try await JobTimeline.run(spec, baseURL: baseURL, client: servers.client, timeout: .seconds(120))
            let cpuAfter = ProcessCPU.seconds(pid: capstanPID)
            let job = try await api.job(timeline.id)
            let succeeded = job.counts[.succeeded] ?? 0
            guard job.state == .succeeded, job.nodes.count == count, succeeded == count, timeline.succeeded.count == count else {
                let states = JobNodeState.allCases.compactMap { state in job.counts[state].map { "\($0) \(state.rawValue)" } }
                throw BenchError(
                    "job \(timeline.id) on \(count) agents ended \(job.state.rawValue): \(succeeded) of \(job.nodes.count) nodes succeeded "
                        + "(\(states.joined(separator: ", "))), \(timeline.succeeded.count) succeeded events seen")
            }
            let summary = LatencySummary(nanoseconds: timeline.succeeded.map(\.nanoseconds))
            result.nodes.append(summary)
            result.done.append(timeline.done)
            if let cpuBefore, let cpuAfter { result.serverCPU.append(cpuAfter - cpuBefore) }
            progress(
                "\(count) agents: job \(run)/\(runs)  node p50 \(Format.milliseconds(summary.p50))  p99 \(Format.milliseconds(summary.p99))"
                    + "  done \(Format.milliseconds(timeline.done.seconds * 1000))")
        }
        await fleet.stop()
        return result
    }

}
