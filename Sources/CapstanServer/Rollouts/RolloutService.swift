import CapstanCore
import CapstanStore
import Foundation
import Logging
import Synchronization

/// Rollouts: candidate versions of config keys and templates that reach a growing share of the
/// nodes (and identified API clients) before they become the main versions. Records live at
/// `/capstan/rollouts/NAME`; see `StoreLayout+Rollouts` for the rest.
public final class RolloutService: Sendable {
    let store: any KeyValueStore
    let configs: ConfigService
    let registry: NodeRegistry
    let checks: CheckService
    let templates: TemplateService
    /// The agents' host samples on this replica, for metric gates.
    let hostMetrics: NodeMetrics?
    let logger: Logger
    let now: @Sendable () -> Date

    /// Decoded records by name, valid while their store revision is unchanged (readers' path).
    private let decoded = Mutex<[String: (revision: Int64, record: RolloutRecord)]>([:])
    /// The template push's view of each open rollout, by the record's revision.
    let overlayCache = Mutex<[String: (revision: Int64, entry: RolloutOverlay.Entry)]>([:])

    /// Candidates one rollout may hold: its promotion is one store transaction (etcd allows 128
    /// operations in one).
    static let maxCandidates = 25
    static let maxAttempts = 16

    public init(
        store: any KeyValueStore, configs: ConfigService, registry: NodeRegistry, checks: CheckService, templates: TemplateService,
        hostMetrics: NodeMetrics? = nil, logger: Logger, now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.hostMetrics = hostMetrics
        self.store = store
        self.configs = configs
        self.registry = registry
        self.checks = checks
        self.templates = templates
        self.logger = logger
        self.now = now
    }

    // MARK: Records

    /// Starts a rollout at its first step; candidates are added with `putCandidate`.
    public func start(_ name: String, _ spec: RolloutSpec, actor: String) async throws -> RolloutInfo {
        try Self.validate(name: name, spec: spec)
        let known = Set(try await checks.records().map(\.name))
        for case .check(let check) in try spec.gates.map({ try RolloutGate(parsing: $0) }) where !known.contains(check) {
            throw CapstanError(.invalidArgument, "--gate check=\(check): no check \(check.quoted) exists (capstan check ls)")
        }
        let time = now()
        var record = RolloutRecord(
            spec: spec, state: .running, step: 0, threshold: "0", everyone: false, admitted: nil, candidates: [],
            transitions: [RolloutTransition(action: "start", actor: actor, time: time, detail: "at \(spec.describe(step: 0))")],
            createdAt: time, stepStartedAt: time)
        record.widening = try await widening(name, record, step: 0, previous: nil)
        let key = StoreLayout.rollout(name)
        let result = try await store.txn(
            TxnRequest(
                compares: [.absent(key)],
                success: [.put(key: key, value: try record.encoded())]))
        guard result.succeeded else {
            let existing = try await store.get(key).flatMap { try? RolloutRecord.decode($0.value) }
            throw CapstanError(
                .conflict, "rollout \(name) already exists (\(existing?.state.rawValue ?? "closed")): choose another name")
        }
        logger.info("rollout started", metadata: ["rollout": "\(name)", "step": "\(spec.describe(step: 0))"])
        return record.info(name: name, revision: result.revision)
    }

    public func list() async throws -> RolloutList {
        var items: [RolloutInfo] = []
        for kv in try await store.range(RangeRequest(.prefix(StoreLayout.rollouts))).kvs {
            let name = String(kv.key.dropFirst(StoreLayout.rollouts.count))
            guard let record = try? self.record(name, kv) else { continue }
            items.append(try await info(name, record, revision: kv.modRevision))
        }
        return RolloutList(items: items)
    }

    public func rollout(_ name: String) async throws -> RolloutInfo {
        let (record, revision) = try await read(name)
        return try await info(name, record, revision: revision)
    }

    /// The record as the API shows it, each candidate with the store revision it was written at.
    func info(_ name: String, _ record: RolloutRecord, revision: Int64) async throws -> RolloutInfo {
        var info = record.info(name: name, revision: revision)
        let prefix = StoreLayout.rolloutCandidatePrefix(name)
        var revisions: [String: Int64] = [:]
        for kv in try await store.range(RangeRequest(.prefix(prefix), keysOnly: true)).kvs {
            revisions[String(kv.key.dropFirst(prefix.count))] = kv.modRevision
        }
        for index in info.candidates.indices {
            let candidate = info.candidates[index]
            info.candidates[index].revision = revisions["\(candidate.kind.rawValue)/\(candidate.name)"] ?? 0
        }
        return info
    }

    func read(_ name: String) async throws -> (RolloutRecord, Int64) {
        guard let kv = try await store.get(StoreLayout.rollout(name)) else { throw Self.notFound(name) }
        return (try record(name, kv), kv.modRevision)
    }

    /// The record in `kv`, decoded once per revision.
    func record(_ name: String, _ kv: KeyValue) throws -> RolloutRecord {
        if let cached = decoded.withLock({ $0[name] }), cached.revision == kv.modRevision { return cached.record }
        let record = try RolloutRecord.decode(kv.value)
        decoded.withLock { $0[name] = (kv.modRevision, record) }
        return record
    }

    // MARK: Transitions

    /// Moves to the next step now.
    public func step(_ name: String, actor: String, reason: String = "", expecting: Int64? = nil) async throws -> RolloutInfo {
        try await update(name, actor: actor, action: "step", allowed: [.running, .paused], expecting: expecting) { record in
            guard record.step + 1 < record.spec.steps.count else {
                throw CapstanError(
                    .conflict, "rollout \(name) is at its last step (\(record.spec.describe(step: record.step))): promote it")
            }
            record.step += 1
            record.widening = try await self.widening(name, record, step: record.step, previous: record.widening)
            record.stepStartedAt = self.now()
            return "to \(record.spec.describe(step: record.step))" + (reason.isEmpty ? "" : ": \(reason)")
        }
    }

    public func pause(_ name: String, actor: String, reason: String = "", expecting: Int64? = nil) async throws -> RolloutInfo {
        try await update(name, actor: actor, action: "pause", allowed: [.running], expecting: expecting) { record in
            record.state = .paused
            return reason
        }
    }

    public func resume(_ name: String, actor: String) async throws -> RolloutInfo {
        try await update(name, actor: actor, action: "resume", allowed: [.paused]) { record in
            record.state = .running
            // The step's interval counts again from now: gates must hold for a whole interval.
            record.stepStartedAt = self.now()
            return ""
        }
    }

    /// What the step `step` sets, given the nodes the selector picks now.
    func widening(_ name: String, _ record: RolloutRecord, step: Int, previous: RolloutAudience.Widening?) async throws
        -> RolloutAudience.Widening
    {
        let value = record.spec.steps[step]
        // A step to every node needs no list of them (listing decodes every node record).
        let everyone = record.spec.percentSteps != nil && value >= 100
        let eligible = everyone ? [] : try await registry.list(selector: try Selector(record.spec.selector)).map(\.name)
        return RolloutAudience.widen(
            rollout: name, percent: record.spec.percentSteps == nil ? nil : value, nodes: record.spec.nodeSteps == nil ? nil : value,
            eligible: eligible, previous: previous)
    }

    /// Applies `change` to an open rollout's record and records the transition, in one
    /// transaction that also touches the index key of every key and template it holds (their
    /// readers and watchers see the change); retried when the record changed meanwhile.
    ///
    /// - Parameters:
    ///   - expecting: the record's revision the transition was decided on (the server's timed
    ///     steps and gates): refused when it changed meanwhile, so that it is decided again.
    ///   - change: edits the record, answers the transition's detail.
    func update(
        _ name: String, actor: String, action: String, allowed: Set<RolloutState>, expecting: Int64? = nil,
        extraOps: @Sendable (RolloutRecord) throws -> [TxnOp] = { _ in [] },
        _ change: @Sendable (inout RolloutRecord) async throws -> String
    ) async throws -> RolloutInfo {
        for _ in 0..<Self.maxAttempts {
            let (stored, revision) = try await read(name)
            var record = stored
            if let expecting, expecting != revision { throw Self.changed(name) }
            guard allowed.contains(record.state) else {
                throw CapstanError(.conflict, "rollout \(name) is \(record.state.rawValue): it cannot \(action)")
            }
            let detail = try await change(&record)
            record.transitions.append(RolloutTransition(action: action, actor: actor, time: now(), detail: detail))
            var ops: [TxnOp] = [.put(key: StoreLayout.rollout(name), value: try record.encoded())]
            if record.state.isOpen { ops += Self.indexOps(name, record) }
            ops += try extraOps(record)
            let result = try await store.txn(
                TxnRequest(compares: [Compare(key: StoreLayout.rollout(name), .modRevision(revision))], success: ops))
            if result.succeeded {
                logger.info("rollout \(action)", metadata: ["rollout": "\(name)", "actor": "\(actor)", "detail": "\(detail)"])
                return try await info(name, record, revision: result.revision)
            }
        }
        throw CapstanError(.conflict, "rollout \(name) is changing too fast; gave up after \(Self.maxAttempts) attempts")
    }

    /// Puts the index key of every key and template the rollout holds.
    static func indexOps(_ name: String, _ record: RolloutRecord) -> [TxnOp] {
        record.candidates.map { candidate in
            let key =
                candidate.kind == .config ? StoreLayout.configRollout(candidate.name) : StoreLayout.templateRollout(candidate.name)
            return .put(key: key, value: Data(name.utf8))
        }
    }

    // MARK: Validation

    static func validate(name: String, spec: RolloutSpec) throws(CapstanError) {
        do { try NodeName.validate(name) } catch {
            throw CapstanError(.invalidArgument, error.message.replacingOccurrences(of: "node name", with: "rollout name"))
        }
        _ = try Selector(spec.selector)
        switch (spec.percentSteps, spec.nodeSteps) {
        case (nil, nil): throw CapstanError(.invalidArgument, "give --percent or --nodes: how many nodes the first step reaches")
        case (.some, .some): throw CapstanError(.invalidArgument, "give --percent or --nodes, not both")
        case (let percents?, nil):
            if let bad = percents.first(where: { !(1...100).contains($0) }) {
                throw CapstanError(.invalidArgument, "percentage \(bad) is outside 1..100")
            }
        case (nil, let counts?):
            if let bad = counts.first(where: { $0 < 1 }) { throw CapstanError(.invalidArgument, "node count \(bad) must be at least 1") }
        }
        let steps = spec.steps
        guard !steps.isEmpty, steps.count <= 100 else { throw CapstanError(.invalidArgument, "give from 1 to 100 steps") }
        for (earlier, later) in zip(steps, steps.dropFirst()) where later <= earlier {
            throw CapstanError(
                .invalidArgument, "steps must increase: \(later) comes after \(earlier) in \(steps.map(String.init).joined(separator: ","))")
        }
        if let interval = spec.stepIntervalMilliseconds, !(1000...(7 * 86_400_000)).contains(interval) {
            throw CapstanError(.invalidArgument, "--step-interval must be from 1s to 168h")
        }
        if spec.autoPromote, spec.stepIntervalMilliseconds == nil {
            throw CapstanError(.invalidArgument, "--auto-promote needs --step-interval: how long the last step's gates must hold")
        }
        for gate in spec.gates { _ = try RolloutGate(parsing: gate) }
    }

    static func changed(_ name: String) -> CapstanError {
        CapstanError(.conflict, "rollout \(name) changed since the decision")
    }

    static func notFound(_ name: String) -> CapstanError {
        CapstanError(.notFound, "rollout \(name.quoted) not found")
    }
}
