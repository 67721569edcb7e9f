import CapstanClient
import CapstanCore
import Foundation

/// One agent count of `CapstanBench rollout`: N simulated agents bound by one template, then
/// `runs` rollouts of its data config (10 %, 100 %, promote), each followed by a plain push.
struct RolloutMeasurement {
    let count: Int
    let round: Int
    let runs: Int
    let servers: BenchServers

    /// The config every node's template reads; the rollouts' candidates are versions of it.
    var dataKey: String { "bench/rollout-\(round).yaml" }

    func run() async throws -> RolloutResult {
        let serverPID = try servers.pid(of: servers.capstan)
        let fleet = try await servers.settledFleet(count: count, round: round)
        let timer = PushTimer(fleet: fleet, serverPID: serverPID, idleRate: try await PushTimer.idleRate(serverPID: serverPID))
        let source = "bench/rollout-\(round).mustache"
        _ = try await servers.putConfig(source, "generation {{generation}}\n")
        let first = try await servers.putConfig(dataKey, "generation: 0\n")
        try await servers.putTemplate("rollout-\(round)", selector: "fleet=\(fleet.label)", source: source, data: dataKey)
        progress("\(count) agents: waiting for the first push")
        _ = try await fleet.waitForAll(revision: first, timeout: .seconds(300))
        try await Task.sleep(for: .seconds(1))
        var result = RolloutResult(count: count)
        for run in 1...runs {
            try await measureRollout(run: run, fleet: fleet, timer: timer, into: &result)
        }
        await fleet.stop()
        return result
    }

    private func measureRollout(run: Int, fleet: SimulatedFleet, timer: PushTimer, into result: inout RolloutResult) async throws {
        let api = CapstanClient(
            server: servers.capstan.baseURL, author: "bench", token: ServeCommand.benchRootToken, httpClient: servers.client,
            watchHTTPClient: servers.client)
        let name = "bench-\(round)-\(run)"
        _ = try await api.startRollout(name, RolloutSpec(selector: "fleet=\(fleet.label)", percentSteps: [10, 100]))
        // Who the first step admits is settled at the start (the threshold), before any candidate.
        let memberNames = Set(try await api.rolloutStatus(name).nodes.filter(\.member).map(\.name))
        let members = fleet.indices(of: memberNames)
        let others = Set(0..<count).subtracting(members)
        guard !members.isEmpty, members.count == memberNames.count else {
            throw BenchError("rollout \(name): \(memberNames.count) members, \(members.count) of them among the \(count) agents")
        }

        let (tenth, candidate) = try await timer.measure(among: members) {
            let info = try await api.putCandidate(dataKey, rollout: name, content: Data("generation: candidate-\(run)\n".utf8))
            guard let revision = info.candidates.first(where: { $0.name == dataKey })?.revision, revision > 0 else {
                throw BenchError("rollout \(name) shows no candidate of \(dataKey)")
            }
            return revision
        }
        // Members only: a node outside the step must not have received the candidate.
        let leaked = fleet.holders(of: candidate).subtracting(members)
        guard leaked.isEmpty else { throw BenchError("rollout \(name) at 10 %: \(leaked.count) non-members received the candidate") }

        let (everyone, _) = try await timer.measure(among: others) {
            _ = try await api.rollout(name, "step")
            return candidate
        }
        let (promoted, _) = try await timer.measure(among: nil) { try await api.rollout(name, "promote").revision }
        let (plain, _) = try await timer.measure(among: nil) { try await servers.putConfig(dataKey, "generation: \(run)\n") }
        result.tenth.append(tenth)
        result.everyone.append(everyone)
        result.promoted.append(promoted)
        result.plain.append(plain)
        func line(_ sample: PushSample) -> String {
            "p50 \(Format.milliseconds(sample.latency.p50))  max \(Format.milliseconds(sample.latency.max))"
        }
        progress(
            "\(count) agents: run \(run)/\(runs)  10 % (\(members.count)) \(line(tenth))  |  100 % \(line(everyone))  |  "
                + "promote \(line(promoted))  |  plain push \(line(plain))")
    }
}
