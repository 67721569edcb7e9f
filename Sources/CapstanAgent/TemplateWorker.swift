import CapstanCore
import Foundation
import Logging
import Synchronization

/// Applies the template sets the server pushes, one set at a time: a set that arrives while
/// another is being applied waits, and only the newest waiting set is applied next (so a burst
/// of changes costs one more pass, not one per change). The last set is kept in the data
/// directory (`templates.json`), so that after a restart the agent tells the server what it
/// already has instead of receiving it again.
actor TemplateWorker {
    let applier: TemplateApplier
    let file: String
    let logger: Logger
    /// The newest set not yet applied.
    private nonisolated let inbox = Mutex<AgentMessage.Templates?>(nil)
    /// Wakes `run` when a set arrives; arrivals while it applies collapse into one.
    private nonisolated let arrivals = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    /// The newest report per template, sent again after a reconnect.
    private(set) var reports: [String: TemplateReport] = [:]
    private var sink: (@Sendable (TemplateReport) async -> Void)?
    private var facts: NodeFacts?
    private let name: String

    init(applier: TemplateApplier, dataDirectory: String, name: String, logger: Logger) {
        self.applier = applier
        self.file = URL(fileURLWithPath: dataDirectory).appendingPathComponent("templates.json").path
        self.name = name
        self.logger = logger
    }

    /// The digest of the set last received, if any.
    nonisolated func storedDigest() -> String? {
        storedSet()?.digest
    }

    /// The set last received and applied, if any (its checks run from the start, server or not).
    nonisolated func storedSet() -> AgentMessage.Templates? {
        FileManager.default.contents(atPath: file).flatMap { try? JSONDecoder.agent.decode(AgentMessage.Templates.self, from: $0) }
    }

    /// Where reports go (the current connection), and the facts templates see; resends the
    /// newest reports.
    func connected(facts: NodeFacts, sink: @escaping @Sendable (TemplateReport) async -> Void) async {
        self.facts = facts
        self.sink = sink
        for report in reports.values.sorted(by: { $0.template < $1.template }) { await sink(report) }
    }

    /// Hands a set over to be applied, without waiting: it replaces one still waiting, and is
    /// applied after the one being applied, if any.
    nonisolated func submit(_ set: AgentMessage.Templates) {
        inbox.withLock { $0 = set }
        arrivals.continuation.yield()
    }

    /// Applies submitted sets, the newest waiting one at a time, until cancelled. It runs for
    /// the agent's life, not a connection's: a set arriving just before a connection drops is
    /// still applied, and its report sent after the next connect.
    func run() async {
        for await _ in arrivals.stream {
            while let next = inbox.withLock({ $0.take() }) { await apply(next) }
        }
    }

    private func apply(_ set: AgentMessage.Templates) async {
        let node = nodeContext(labels: set.labels)
        let applier = self.applier
        // Templates of one set are independent: apply them side by side (each waits its own splay).
        let results = await withTaskGroup(of: TemplateReport.self) { group in
            for assignment in set.assignments {
                group.addTask { await applier.apply(assignment, node: node) }
            }
            var results: [TemplateReport] = []
            for await report in group { results.append(report) }
            return results
        }
        for report in results {
            reports[report.template] = report
            await sink?(report)
        }
        let names = Set(set.assignments.map(\.name))
        reports = reports.filter { names.contains($0.key) }
        // Kept only once applied: after a crash mid-way, the digest sent on the next connect is
        // the old one, and the server sends this set again.
        do {
            try FileWriting.replace(file, with: try JSONEncoder.agent.encode(set), mode: 0o600)
        } catch {
            logger.warning("could not keep the template set", metadata: ["error": "\(error)"])
        }
    }

    private func nodeContext(labels: [String: String]) -> ConfigValue {
        let facts = self.facts ?? HostFacts.collect()
        var fields: [String: ConfigValue] = [
            "hostname": .string(facts.hostname), "os": .string(facts.os), "kernel": .string(facts.kernel),
            "arch": .string(facts.arch), "cpuCount": .int(Int64(facts.cpuCount)), "memoryBytes": .int(facts.memoryBytes),
            "addresses": .array(facts.addresses.map(ConfigValue.string)), "agentVersion": .string(facts.agentVersion),
        ]
        if let boot = facts.bootTime { fields["bootTime"] = .string(ISO8601DateFormatter().string(from: boot)) }
        return .object([
            "name": .string(name), "facts": .object(fields), "labels": .object(labels.mapValues(ConfigValue.string)),
        ])
    }
}

extension JSONEncoder {
    static var agent: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = .sortedKeys
        return encoder
    }
}

extension JSONDecoder {
    static var agent: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
