import CapstanCore
import CapstanStore
import Foundation

extension RolloutService {
    /// Where a gate stands: it holds, it is not decided yet (a check still pending, a member
    /// without a sample), or it fails (the failure policy applies).
    enum GateOutcome: Sendable, Equatable {
        case holds(String)
        case waiting(String)
        case fails(String)

        var detail: String {
            switch self {
            case .holds(let detail), .waiting(let detail), .fails(let detail): detail
            }
        }
    }

    /// Every gate of the rollout, evaluated over its members now.
    func evaluateGates(_ name: String, _ record: RolloutRecord, nodes: [(node: NodeInfo, member: Bool)]) async throws -> [RolloutStatus.Gate] {
        try await gateOutcomes(name, record, nodes: nodes).map { gate, outcome in
            let passing = if case .holds = outcome { true } else { false }
            let prefix = if case .fails = outcome { "fails: " } else if case .waiting = outcome { "waiting: " } else { "" }
            return RolloutStatus.Gate(gate: gate, passing: passing, detail: prefix + outcome.detail)
        }
    }

    func gateOutcomes(_ name: String, _ record: RolloutRecord, nodes: [(node: NodeInfo, member: Bool)]) async throws
        -> [(gate: String, outcome: GateOutcome)]
    {
        let members = nodes.filter { $0.member }.map { $0.node }
        var outcomes: [(String, GateOutcome)] = []
        var rolled: [String: RolledTemplate]?
        for text in record.spec.gates {
            guard let gate = try? RolloutGate(parsing: text) else { continue }
            switch gate {
            case .check(let check):
                outcomes.append((text, try await checkOutcome(check, members: members)))
            case .unhealthy(let limit):
                let down = members.filter { $0.status != .healthy || !$0.connected }.map(\.name)
                outcomes.append((text, down.count > limit ? .fails("\(down.count) unhealthy: \(Self.names(down))") : .holds("\(down.count) unhealthy")))
            case .templateFailures(let limit):
                if rolled == nil { rolled = try await rolledTemplates(name) }
                var failed: [String] = []
                for member in members {
                    for (template, rolled) in rolled ?? [:] where rolled.binds(member) {
                        if try await templateState(template, node: member.name, expected: rolled.expected) == .failed {
                            failed.append("\(member.name) (\(template))")
                        }
                    }
                }
                outcomes.append(
                    (text, failed.count > limit ? .fails("\(failed.count) failed: \(Self.names(failed))") : .holds("\(failed.count) failed")))
            case .metric(let metric, let comparison, let limit):
                outcomes.append((text, metricOutcome(metric, comparison, limit, members: members)))
            }
        }
        return outcomes
    }

    private func checkOutcome(_ check: String, members: [NodeInfo]) async throws -> GateOutcome {
        let statuses = try await checks.statuses(of: check)
        let critical = members.filter { statuses[$0.name]?.status == .critical }.map(\.name)
        if !critical.isEmpty { return .fails("critical on \(Self.names(critical))") }
        let pending = members.filter { statuses[$0.name]?.status != .passing }.map(\.name)
        if !pending.isEmpty { return .waiting("not passing yet on \(Self.names(pending))") }
        return .holds("passing on \(members.count) member\(members.count == 1 ? "" : "s")")
    }

    /// From the host samples this replica holds (the agents connected to it).
    private func metricOutcome(_ metric: RolloutGate.Metric, _ comparison: RolloutGate.Comparison, _ limit: Double, members: [NodeInfo])
        -> GateOutcome
    {
        guard let metrics = hostMetrics else { return .waiting("no host metrics on this server") }
        let samples = Dictionary(metrics.latest().map { ($0.node, $0.sample) }, uniquingKeysWith: { first, _ in first })
        var breaking: [String] = []
        var unknown: [String] = []
        for member in members {
            guard let value = samples[member.name].flatMap({ metric.value(in: $0) }) else {
                unknown.append(member.name)
                continue
            }
            if !comparison.holds(value, limit) { breaking.append("\(member.name) (\(String(format: "%.2f", value)))") }
        }
        if !breaking.isEmpty {
            let bound = limit.rounded() == limit ? String(Int64(limit)) : String(limit)
            return .fails("\(metric.rawValue) past \(comparison.rawValue)\(bound) on \(Self.names(breaking))")
        }
        if !unknown.isEmpty { return .waiting("no sample yet from \(Self.names(unknown))") }
        return .holds("within on \(members.count) member\(members.count == 1 ? "" : "s")")
    }

    /// A few names, then how many more.
    static func names(_ names: [String]) -> String {
        names.count <= 5 ? names.joined(separator: ", ") : names.prefix(5).joined(separator: ", ") + " and \(names.count - 5) more"
    }
}
