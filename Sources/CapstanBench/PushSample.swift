/// One push to simulated agents (a rollout's step, a promotion or a plain write): when each
/// node waited for received its set, and what it cost.
struct PushSample: Sendable {
    /// From sending the request to each node waited for receiving the set.
    var latency: LatencySummary
    /// The server's CPU seconds from the request to the last node having the set.
    var serverCPU: Double?
    /// The server's CPU seconds from the request to a second after the last node had the set,
    /// less the idle fleet's over the same time: the push with the reports that follow it.
    var serverFullCPU: Double?
    /// The benchmark process's CPU seconds (the simulated agents) over the first span.
    var agentsCPU: Double?
}
