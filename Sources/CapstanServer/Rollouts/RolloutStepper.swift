import CapstanCore
import CapstanStore
import Logging
import ServiceLifecycle

/// Moves running rollouts along while their steps run: evaluates every gate every `interval`,
/// pauses or aborts a rollout whose gate fails (per its `--on-failure`), starts the next step
/// once a step ran `--step-interval` with its gates holding, and with `--auto-promote` promotes
/// after the last one. One replica does it at a time (the lease lock); everything it decides
/// from is in the store (each step's start time included), so another replica, or this one
/// restarted, takes over where it stood. It campaigns for the lock only while a rollout is
/// running, so that a server without rollouts writes nothing for them.
struct RolloutStepper: Service {
    let rollouts: RolloutService
    let audit: AuditLog
    let lockTTL: Int64
    var interval: Duration = .seconds(1)
    let logger: Logger

    func run() async throws {
        let lock = LeaseLock(
            store: rollouts.store, key: StoreLayout.lock("rollouts"), holder: LeaseLock.processHolder(), ttl: lockTTL, logger: logger)
        do {
            try await cancelWhenGracefulShutdown {
                while true {
                    if try await hasWork() {
                        try await lock.whileHolding {
                            while try await hasWork() {
                                try await advanceLogging()
                                try await Task.sleep(for: interval)
                            }
                        }
                    }
                    try await Task.sleep(for: interval)
                }
            }
        } catch is CancellationError {
            // Shutting down.
        }
    }

    /// Whether a rollout is running (a store read: errors count as work, retried under the lock).
    private func hasWork() async throws -> Bool {
        do {
            return try await !rollouts.running().isEmpty
        } catch let error as CancellationError {
            throw error
        } catch {
            logger.warning("rollouts could not be read", metadata: ["error": "\(error)"])
            return false
        }
    }

    private func advanceLogging() async throws {
        do {
            try await advance()
        } catch let error as CancellationError {
            throw error
        } catch {
            logger.warning("rollouts could not be advanced", metadata: ["error": "\(error)"])
        }
    }

    /// One round over the running rollouts.
    func advance() async throws {
        for name in try await rollouts.running() {
            guard let decision = try await rollouts.decide(name) else { continue }
            do {
                let after: RolloutInfo
                switch decision.action {
                case "abort": after = try await rollouts.abort(name, actor: "server", reason: decision.reason, expecting: decision.revision)
                case "pause": after = try await rollouts.pause(name, actor: "server", reason: decision.reason, expecting: decision.revision)
                case "promote":
                    after = try await rollouts.promote(name, actor: "server", reason: decision.reason, expecting: decision.revision)
                default: after = try await rollouts.step(name, actor: "server", reason: decision.reason, expecting: decision.revision)
                }
                await audit.append(
                    AuditLog.Draft(
                        actorKind: .server, actorID: "rollouts", actorDescription: decision.reason, action: "rollout.\(decision.action)",
                        method: "POST", resource: "/v1/rollouts/\(name)/\(decision.action)", client: "server", status: 200,
                        allowed: true, revisionAfter: after.revision))
            } catch let error as CapstanError where error.code == .conflict {
                // Someone moved it meanwhile: decided again next round.
            }
        }
    }
}

extension RolloutService {
    /// The names of the running rollouts (records decoded once per revision).
    func running() async throws -> [String] {
        try await store.range(RangeRequest(.prefix(StoreLayout.rollouts))).kvs.compactMap { kv in
            let name = String(kv.key.dropFirst(StoreLayout.rollouts.count))
            return (try? self.record(name, kv))?.state == .running ? name : nil
        }
    }

    /// What a running rollout should do now, if anything: its gates decide, then its clock. A
    /// rollout without candidates yet changes nothing on its members: nothing to decide.
    ///
    /// - Returns: the action, why, and the record's revision it was decided on.
    func decide(_ name: String) async throws -> (action: String, reason: String, revision: Int64)? {
        let (record, revision) = try await read(name)
        guard record.state == .running, !record.candidates.isEmpty else { return nil }
        // Only gates read the members, and listing them reads every node record the selector
        // may pick: each second of a gateless rollout over 10,000 nodes would decode 10,000.
        let outcomes = record.spec.gates.isEmpty ? [] : try await gateOutcomes(name, record, nodes: try await members(name, record))
        if let failed = outcomes.first(where: { if case .fails = $0.outcome { true } else { false } }) {
            return (record.spec.onFailure.rawValue, "gate \(failed.gate) failed: \(failed.outcome.detail)", revision)
        }
        guard let interval = record.spec.stepIntervalMilliseconds,
            now().timeIntervalSince(record.stepStartedAt) * 1000 >= Double(interval),
            outcomes.allSatisfy({ if case .holds = $0.outcome { true } else { false } })
        else { return nil }
        if record.step + 1 < record.spec.steps.count {
            return ("step", "gates held for \(DurationParser.format(.milliseconds(interval)))", revision)
        }
        return record.spec.autoPromote
            ? ("promote", "the last step's gates held for \(DurationParser.format(.milliseconds(interval)))", revision) : nil
    }
}
