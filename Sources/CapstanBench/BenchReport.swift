import Foundation

/// Everything one benchmark run measured, with what is needed to reproduce and judge it.
struct BenchReport: Codable, Sendable {
    /// The parameters the measurements ran with.
    struct Settings: Codable, Sendable {
        var durationSeconds: Double
        var warmupSeconds: Double
        var runs: Int
        var clientCounts: [Int]
        var getClientCounts: [Int]
        var valueSize: Int
        var preloadedKeys: Int
        var watchEvents: Int
        var watchPauseMilliseconds: Double
        /// The store under Capstan.
        var engine: BenchPlan.Engine
        var generators: [ThroughputComparison.Generator]

        init(plan: BenchPlan) {
            durationSeconds = plan.duration.seconds
            warmupSeconds = plan.warmup.seconds
            runs = plan.runs
            clientCounts = plan.clientCounts
            getClientCounts = plan.getClientCounts
            valueSize = plan.valueSize
            preloadedKeys = plan.preloadedKeys
            watchEvents = plan.watchEvents
            watchPauseMilliseconds = plan.watchPause.seconds * 1000
            engine = plan.engine
            generators = plan.generators
        }
    }

    /// When the run started, ISO 8601 in UTC.
    var date: String
    var commandLine: String
    var machine: MachineInfo
    var etcdVersion: String
    /// 1, 5 and 15 minute load averages before and after the run: other work on the machine
    /// shows here.
    var loadAverageBefore: String
    var loadAverageAfter: String
    var settings: Settings
    var throughput: [ThroughputComparison]
    var watch: WatchComparison
    var goals: [GoalCheck]

    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
