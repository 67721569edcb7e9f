/// Watch delivery latency of both systems on an idle server, all runs' events pooled.
struct WatchComparison: Codable, Sendable {
    /// One system's figures.
    struct Figures: Codable, Sendable {
        /// From sending a put to receiving its event.
        var sendToEvent: LatencySummary
        /// From receiving a put's acknowledgement to receiving its event (negative: event first).
        var ackToEvent: LatencySummary

        init(runs: [WatchProbe.Result]) {
            sendToEvent = LatencySummary(nanoseconds: runs.flatMap(\.sendToEvent))
            ackToEvent = LatencySummary(nanoseconds: runs.flatMap(\.ackToEvent))
        }
    }

    /// Puts per run.
    var eventsPerRun: Int
    var runs: Int
    var capstan: Figures
    var etcd: Figures
}
