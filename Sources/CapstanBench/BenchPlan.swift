import Foundation

/// What one benchmark run measures and how; every field has a default.
struct BenchPlan: Sendable {
    enum OutputFormat: String, Sendable, CaseIterable {
        case markdown, json
    }

    /// The store under the Capstan server.
    enum Engine: String, Sendable, CaseIterable, Codable {
        /// Its own SQLite file.
        case sqlite
        /// The very etcd measured beside it, under a key prefix of its own.
        case etcd
    }

    /// Length of one throughput measurement.
    var duration: Duration = .seconds(10)
    /// Unmeasured load before each throughput measurement: opens the connections, warms caches.
    var warmup: Duration = .seconds(1)
    /// Concurrent clients of the put measurements.
    var clientCounts: [Int] = [1, 16, 256]
    /// Bytes per value written.
    var valueSize: Int = 256
    /// Keys preloaded for the get measurements.
    var preloadedKeys: Int = 1000
    /// Times each measurement is repeated; the report gives the median.
    var runs: Int = 3
    /// Puts observed through a watch per watch measurement.
    var watchEvents: Int = 300
    /// Pause between the puts of the watch measurement, so the server is idle when each arrives.
    var watchPause: Duration = .milliseconds(10)
    /// Directory in which the benchmark makes its temporary directory; both servers' data goes there.
    var workDirectory: String = FileManager.default.temporaryDirectory.path
    /// Path of the etcd binary.
    var etcdPath: String = "/usr/bin/etcd"
    /// The CapstanBench binary run as the Capstan server (nil: this one).
    var serverExecutable: String?
    var output: OutputFormat = .markdown
    var engine: Engine = .sqlite
    /// Load generators to measure with, each in turn on both targets; targets are judged on wrk's
    /// figures when wrk is among them.
    var generators: [ThroughputComparison.Generator] = [.wrk, .swift]
    /// Path of the wrk binary (a name is looked up in `PATH`).
    var wrkPath: String = "wrk"
    /// The command line, as typed, for the report.
    var commandLine: String = ""

    /// Client counts of the get measurements: 16 and the highest put count.
    var getClientCounts: [Int] {
        Array(Set([16, clientCounts.max() ?? 16])).sorted()
    }

    var maxClients: Int {
        max(clientCounts.max() ?? 1, getClientCounts.max() ?? 1)
    }
}
