/// Times pushes to a simulated fleet: the latency to the nodes waited for, the server's CPU
/// and the simulated agents' CPU.
struct PushTimer: Sendable {
    let fleet: SimulatedFleet
    /// The Capstan server's process id.
    let serverPID: Int32
    /// The server's CPU seconds per second with the fleet idle (heartbeats only).
    let idleRate: Double?

    /// Measures the idle fleet's cost on the server over `span`.
    static func idleRate(serverPID: Int32, over span: Duration = .seconds(2)) async throws -> Double? {
        let start = (at: ContinuousClock.now, cpu: ProcessCPU.seconds(pid: serverPID))
        try await Task.sleep(for: span)
        return ProcessCPU.seconds(pid: serverPID).flatMap { cpu in
            start.cpu.map { (cpu - $0) / start.at.duration(to: .now).seconds }
        }
    }

    /// Runs `request`, which answers the store revision the push carries, and waits until every
    /// agent of `among` (nil: all) has a set at that revision or later; then a second more, for
    /// the push's reports.
    ///
    /// - Throws: `BenchError` when they do not all have it within `timeout`.
    func measure(among: Set<Int>?, timeout: Duration = .seconds(120), _ request: () async throws -> Int64) async throws
        -> (sample: PushSample, revision: Int64)
    {
        let cpuBefore = ProcessCPU.seconds(pid: serverPID)
        let agentsBefore = ProcessCPU.seconds()
        let sent = ContinuousClock.now
        let revision = try await request()
        let arrivals = try await fleet.waitForAll(revision: revision, among: among, timeout: timeout)
        let cpuAfter = ProcessCPU.seconds(pid: serverPID)
        let agentsAfter = ProcessCPU.seconds()
        try await Task.sleep(for: .seconds(1))
        let cpuSettled = ProcessCPU.seconds(pid: serverPID)
        var sample = PushSample(latency: LatencySummary(nanoseconds: arrivals.map { sent.duration(to: $0).nanoseconds }))
        if let cpuBefore, let cpuAfter { sample.serverCPU = cpuAfter - cpuBefore }
        if let agentsBefore, let agentsAfter { sample.agentsCPU = agentsAfter - agentsBefore }
        if let cpuBefore, let cpuSettled, let idleRate {
            sample.serverFullCPU = cpuSettled - cpuBefore - idleRate * sent.duration(to: .now).seconds
        }
        return (sample, revision)
    }
}
