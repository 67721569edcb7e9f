import CapstanCore
import CapstanStore
import Foundation

extension RolloutService {
    /// Makes every candidate the main version, in one transaction: each config candidate becomes
    /// a new version of its key (its history says it came from the rollout), each template
    /// candidate the template's definition; the rollout releases its keys.
    public func promote(_ name: String, actor: String, reason: String = "", expecting: Int64? = nil) async throws -> RolloutInfo {
        for _ in 0..<Self.maxAttempts {
            let (stored, revision) = try await read(name)
            if let expecting, expecting != revision { throw Self.changed(name) }
            guard stored.state.isOpen else { throw CapstanError(.conflict, "rollout \(name) is \(stored.state.rawValue): it cannot promote") }
            var record = stored
            var compares = [Compare(key: StoreLayout.rollout(name), .modRevision(revision))]
            var ops: [TxnOp] = []
            var written: [ConfigKey] = []
            for candidate in record.candidates {
                let index = Compare(key: Self.indexKey(candidate), .value(Data(name.utf8)))
                compares.append(index)
                ops.append(.delete(.key(Self.indexKey(candidate))))
                switch candidate.kind {
                case .config:
                    let key = try ConfigKey(candidate.name)
                    guard let version = try await promotion(of: key, in: name, actor: actor) else { continue }
                    compares += version.compares
                    ops += version.ops
                    written.append(key)
                case .template:
                    let template = try await templatePromotion(candidate.name, in: name)
                    ops.append(template)
                }
            }
            record.state = .promoted
            record.transitions.append(RolloutTransition(action: "promote", actor: actor, time: now(), detail: reason))
            ops.append(.put(key: StoreLayout.rollout(name), value: try record.encoded()))
            let result = try await store.txn(TxnRequest(compares: compares, success: ops))
            for key in written { configs.writeStates.forget(key, namespace: key.namespace) }
            if result.succeeded {
                logger.info("rollout promoted", metadata: ["rollout": "\(name)", "actor": "\(actor)"])
                return try await info(name, record, revision: result.revision)
            }
        }
        throw CapstanError(.conflict, "rollout \(name) is changing too fast; gave up after \(Self.maxAttempts) attempts")
    }

    /// Sends members back to the main versions; the candidates stay, as abandoned.
    public func abort(_ name: String, actor: String, reason: String = "", expecting: Int64? = nil) async throws -> RolloutInfo {
        try await update(
            name, actor: actor, action: "abort", allowed: [.running, .paused], expecting: expecting,
            extraOps: { record in record.candidates.map { .delete(.key(Self.indexKey($0))) } }
        ) { record in
            record.state = .aborted
            return reason
        }
    }

    /// Aborts the open rollout holding `key`, if any (a plain write with `--force`).
    public func abortHolding(_ key: ConfigKey, actor: String) async throws {
        guard let held = try await store.get(StoreLayout.configRollout(key.description)) else { return }
        let name = String(decoding: held.value, as: UTF8.self)
        _ = try await abort(name, actor: actor, reason: "forced by a plain write of \(key)")
    }

    static func indexKey(_ candidate: RolloutCandidate) -> String {
        candidate.kind == .config ? StoreLayout.configRollout(candidate.name) : StoreLayout.templateRollout(candidate.name)
    }

    /// The compares and operations writing a config candidate as its key's next main version;
    /// nil for the deletion of a key that is gone already.
    private func promotion(of key: ConfigKey, in name: String, actor: String) async throws -> (compares: [Compare], ops: [TxnOp])? {
        guard let (candidate, _) = try await configCandidate(name, key: key.description) else {
            throw CapstanError(.internal, "rollout \(name) lists a candidate of \(key) that is not stored")
        }
        let state = try await configs.readState(key, underRollout: name)
        let deleting = candidate.header.action == .delete
        if deleting, state.currentRevision == 0 { return nil }
        let sequence = state.lastSequence + 1
        let note = "promoted from rollout \(name)" + (candidate.header.comment.isEmpty ? "" : ": \(candidate.header.comment)")
        let version = ConfigRecord(
            sequence: sequence, action: candidate.header.action, format: candidate.header.format, content: candidate.content,
            author: actor, comment: note, time: now())
        let compares = [
            Compare(key: StoreLayout.namespace(key.namespace), .modRevision(state.namespaceRevision)),
            Compare(key: StoreLayout.config(key), .modRevision(state.currentRevision)),
            .absent(StoreLayout.history(key, sequence: sequence)),
        ]
        return (compares, configs.versionOps(key, sequence: sequence, encoded: try version.encoded(), deleting: deleting))
    }

    /// The operation writing a template candidate as the template's definition.
    private func templatePromotion(_ template: String, in name: String) async throws -> TxnOp {
        guard let kv = try await store.get(StoreLayout.templateCandidate(name, template: template)) else {
            throw CapstanError(.internal, "rollout \(name) lists a candidate of template \(template) that is not stored")
        }
        return .put(key: StoreLayout.template(template), value: kv.value)
    }
}
