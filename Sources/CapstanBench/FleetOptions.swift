import ArgumentParser

/// The options of the benchmarks that run a simulated fleet (`agents`, `rollout`): how many
/// agents, where the servers keep their data, which etcd, and which server build.
struct FleetOptions: ParsableArguments {
    @Option(help: "Agent counts, comma-separated.") var agents: String = "1000,10000"
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
    }

    /// The servers to start, with `connections` in the benchmark's HTTP pool.
    func plan(connections: Int) -> BenchPlan {
        var plan = BenchPlan()
        plan.clientCounts = [connections]
        plan.etcdPath = etcd
        plan.serverExecutable = serverBinary
        if let workDir { plan.workDirectory = workDir }
        return plan
    }
}
