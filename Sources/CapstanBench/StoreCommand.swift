import ArgumentParser
import CapstanCore
import Foundation

/// `CapstanBench store`: puts, gets and watch latency of Capstan and etcd, side by side.
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Compare put and get throughput and watch latency of Capstan and etcd.",
        discussion: """
            Starts a Capstan server and a single-member etcd as child processes with their data in one \
            temporary directory, drives both with the same HTTP load generators (wrk, and the \
            benchmark's own client), alternating between them, and prints the medians. With --engine etcd the Capstan server keeps its data in \
            that same etcd, so the comparison shows what Capstan costs over raw etcd. Progress goes to standard error, the report to standard output.
            """)

    @Option(help: "Length of each measurement, e.g. 10s or 500ms.") var duration: String = "10s"
    @Option(help: "Unmeasured load before each throughput measurement.") var warmup: String = "1s"
    @Option(help: "Client counts of the put measurements, comma-separated.") var clients: String = "1,16,256"
    @Option(help: "Bytes per value.") var valueSize: Int = 256
    @Option(help: "Keys preloaded for the get measurements.") var keys: Int = 1000
    @Option(help: "Repetitions of each measurement; the report gives the median.") var runs: Int = 3
    @Option(help: "Puts observed through a watch in the watch measurement.") var watchEvents: Int = 300
    @Option(help: "Directory for the servers' data (default: the system temporary directory).") var workDir: String?
    @Option(help: "Path of the etcd binary.") var etcd: String = "/usr/bin/etcd"
    @Option(help: "Report format: markdown or json.") var output: String = "markdown"
    @Option(help: "Store under the Capstan server: sqlite (its own file) or etcd (the etcd measured beside it).")
    var engine: String = "sqlite"
    @Option(help: "Load generators, comma-separated: wrk (a C program in its own process; the targets are judged on it) and swift (the benchmark's own HTTP client).")
    var generators: String = "wrk,swift"
    @Option(help: "Path of the wrk binary.") var wrk: String = "wrk"

    func validate() throws {
        _ = try plan()
    }

    func plan() throws -> BenchPlan {
        var plan = BenchPlan()
        plan.duration = try Self.parseDuration(duration, option: "--duration")
        plan.warmup = try Self.parseDuration(warmup, option: "--warmup")
        guard plan.duration > .zero else { throw ValidationError("--duration must be longer than zero") }
        plan.clientCounts = try clients.split(separator: ",").map { text in
            guard let count = Int(text.trimmingCharacters(in: .whitespaces)), (1...4096).contains(count) else {
                throw ValidationError("--clients must be numbers from 1 to 4096 separated by commas; got \(clients)")
            }
            return count
        }
        guard !plan.clientCounts.isEmpty else { throw ValidationError("--clients needs at least one count") }
        guard (1...(1 << 20)).contains(valueSize) else { throw ValidationError("--value-size must be 1 byte to 1 MiB") }
        guard keys >= 1 else { throw ValidationError("--keys must be at least 1") }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard watchEvents >= 1 else { throw ValidationError("--watch-events must be at least 1") }
        guard let format = BenchPlan.OutputFormat(rawValue: output) else {
            throw ValidationError("--output must be markdown or json; got \(output)")
        }
        guard let engine = BenchPlan.Engine(rawValue: engine) else {
            throw ValidationError("--engine must be sqlite or etcd; got \(engine)")
        }
        plan.engine = engine
        plan.generators = try generators.split(separator: ",").map { name in
            guard let generator = ThroughputComparison.Generator(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--generators must be wrk, swift or both, comma-separated; got \(generators)")
            }
            return generator
        }
        guard !plan.generators.isEmpty else { throw ValidationError("--generators needs at least one generator") }
        plan.wrkPath = wrk
        plan.valueSize = valueSize
        plan.preloadedKeys = keys
        plan.runs = runs
        plan.watchEvents = watchEvents
        plan.etcdPath = etcd
        if let workDir { plan.workDirectory = workDir }
        plan.output = format
        plan.commandLine = CommandLine.arguments.map(Self.shellQuoted).joined(separator: " ")
        return plan
    }

    func run() async throws {
        let plan = try plan()
        guard FileManager.default.isExecutableFile(atPath: plan.etcdPath) else {
            throw ValidationError("no etcd at \(plan.etcdPath): install it (apt-get install etcd-server) or pass --etcd")
        }
        if plan.generators.contains(.wrk), TimedCommand.which(plan.wrkPath) == nil {
            throw ValidationError("no wrk at \(plan.wrkPath): install it (apt-get install wrk), pass --wrk, or measure with --generators swift")
        }
        let report = try await BenchServers.with(plan: plan) { servers in
            try await BenchRunner(plan: plan, servers: servers).run()
        }
        switch plan.output {
        case .markdown: print(report.markdown())
        case .json: print(try report.json())
        }
    }

    private static func parseDuration(_ text: String, option: String) throws -> Duration {
        do {
            return try DurationParser.parse(text)
        } catch {
            throw ValidationError("\(option): \(error.message)")
        }
    }

    private static func shellQuoted(_ word: String) -> String {
        let safe = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_./=:,@%+"))
        if !word.isEmpty, word.unicodeScalars.allSatisfy(safe.contains) { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
