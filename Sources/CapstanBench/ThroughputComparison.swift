/// One throughput measurement of both systems: medians over the runs and their ratio.
struct ThroughputComparison: Codable, Sendable {
    enum Operation: String, Codable, Sendable {
        case put, get
    }

    /// What sent the requests.
    enum Generator: String, Codable, Sendable, CaseIterable {
        /// `wrk`, in its own process: the figures the targets are judged on.
        case wrk
        /// The benchmark's own HTTP client (AsyncHTTPClient), in the benchmark process.
        case swift

        var title: String { self == .wrk ? "wrk" : "Swift generator" }
    }

    /// One system's figures for the measurement.
    struct Figures: Codable, Sendable {
        /// Median of the runs' throughputs, in requests per second.
        var medianPerSecond: Double
        /// Each run's throughput, in the order run.
        var runsPerSecond: [Double]
        /// Per percentile, the median over the runs, in milliseconds.
        var latency: LatencySummary
        /// Requests that failed, over all runs.
        var failed: Int
        /// Median over the runs of the server's CPU time per request, in microseconds.
        var serverCPUPerRequestMicroseconds: Double?
        /// Median over the runs of the load generator's CPU time per request, in microseconds.
        var generatorCPUPerRequestMicroseconds: Double?
        /// Median over the runs of etcd's CPU time per request, in microseconds (for Capstan on
        /// etcd: what each Capstan request cost the etcd underneath).
        var etcdCPUPerRequestMicroseconds: Double?

        init(runs: [LoadGenerator.Result]) {
            runsPerSecond = runs.map(\.throughput)
            medianPerSecond = Median.of(runsPerSecond)
            let summaries = runs.map(\.latencySummary)
            latency = LatencySummary(
                count: summaries.map(\.count).reduce(0, +),
                p50: Median.of(summaries.map(\.p50)),
                p90: Median.of(summaries.map(\.p90)),
                p99: Median.of(summaries.map(\.p99)),
                max: summaries.map(\.max).max() ?? 0)
            failed = runs.map(\.failed).reduce(0, +)
            let serverCPU = runs.compactMap { BenchRunner.perRequest($0.serverCPUSeconds, $0) }
            serverCPUPerRequestMicroseconds = serverCPU.isEmpty ? nil : Median.of(serverCPU)
            let generatorCPU = runs.compactMap { BenchRunner.perRequest($0.generatorCPUSeconds, $0) }
            generatorCPUPerRequestMicroseconds = generatorCPU.isEmpty ? nil : Median.of(generatorCPU)
            let etcdCPU = runs.compactMap { BenchRunner.perRequest($0.etcdCPUSeconds, $0) }
            etcdCPUPerRequestMicroseconds = etcdCPU.isEmpty ? nil : Median.of(etcdCPU)
        }
    }

    var operation: Operation
    var clients: Int
    var generator: Generator
    var capstan: Figures
    var etcd: Figures
    /// Capstan's median throughput over etcd's.
    var ratio: Double

    init(operation: Operation, clients: Int, generator: Generator, capstan: Figures, etcd: Figures) {
        self.operation = operation
        self.clients = clients
        self.generator = generator
        self.capstan = capstan
        self.etcd = etcd
        ratio = etcd.medianPerSecond > 0 ? capstan.medianPerSecond / etcd.medianPerSecond : 0
    }
}

/// The middle value; the mean of the two middle values for an even count.
enum Median {
    static func of(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        let middle = sorted.count / 2
        return sorted.count.isMultiple(of: 2) ? (sorted[middle - 1] + sorted[middle]) / 2 : sorted[middle]
    }
}
