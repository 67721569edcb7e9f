import CapstanCore
import CapstanStore
import Foundation

extension RolloutService {
    /// Stores the next content of `key` (or, with `deleting`, its deletion) as a candidate of the
    /// open rollout `name`: only its members see it until it is promoted.
    ///
    /// - Throws: `conflict` naming the rollout when another one holds the key; `invalid_content`
    ///   when the content fails the format check; `config_not_found` for a key that does not exist.
    public func putCandidate(
        _ name: String, key: ConfigKey, content: Data, format: ConfigFormat?, deleting: Bool = false, comment: String = "", author: String
    ) async throws -> RolloutInfo {
        let format = format ?? ConfigFormat.infer(fromPath: key.path)
        if !deleting { try configs.validate(content, format: format, key: key) }
        let main = try await configs.current(key)
        guard let current = main.entry else { throw try await configs.notFound(key) }
        if current.dataKeyID != nil {
            throw CapstanError(.invalidArgument, "config \(key) is a secret: secrets are not rolled out gradually")
        }
        let candidate = ConfigRecord(
            sequence: 0, action: deleting ? .delete : .put, format: format, content: deleting ? Data() : content, author: author,
            comment: comment, time: now())
        let encoded = try candidate.encoded()
        let indexKey = StoreLayout.configRollout(key.description)
        for _ in 0..<Self.maxAttempts {
            let (record, revision) = try await read(name)
            guard record.state.isOpen else {
                throw CapstanError(.conflict, "rollout \(name) is \(record.state.rawValue): it takes no more candidates")
            }
            let held = try await store.get(indexKey)
            if let held, String(decoding: held.value, as: UTF8.self) != name {
                throw CapstanError(
                    .conflict, "config \(key) is already under rollout \(String(decoding: held.value, as: UTF8.self)): one open rollout per key")
            }
            if record.candidate(.config, key.description) == nil, record.candidates.count >= Self.maxCandidates {
                throw CapstanError(.invalidArgument, "rollout \(name) holds \(Self.maxCandidates) candidates, the most one rollout may")
            }
            var updated = record
            updated.candidates.removeAll { $0.kind == .config && $0.name == key.description }
            updated.candidates.append(
                RolloutCandidate(
                    kind: .config, name: key.description, action: deleting ? .delete : .put, format: deleting ? nil : format,
                    size: deleting ? nil : content.count, sha256: deleting ? nil : candidate.header.sha256, revision: 0, author: author,
                    time: candidate.header.time))
            updated.transitions.append(
                RolloutTransition(
                    action: "candidate", actor: author, time: candidate.header.time,
                    detail: "\(deleting ? "deletion of" : "new content for") \(key)" + (comment.isEmpty ? "" : ": \(comment)")))
            let result = try await store.txn(
                TxnRequest(
                    compares: [
                        Compare(key: StoreLayout.rollout(name), .modRevision(revision)),
                        held.map { Compare(key: indexKey, .modRevision($0.modRevision)) } ?? .absent(indexKey),
                        // The main version the candidate was checked against is still the main one.
                        Compare(key: StoreLayout.config(key), .modRevision(current.info.revision)),
                    ],
                    success: [
                        .put(key: StoreLayout.configCandidate(name, key: key.description), value: encoded),
                        .put(key: StoreLayout.configRolloutHistory(key.description, rollout: name), value: Data()),
                        .put(key: StoreLayout.rollout(name), value: try updated.encoded()),
                    ] + Self.indexOps(name, updated)))
            if result.succeeded {
                logger.info("rollout candidate stored", metadata: ["rollout": "\(name)", "config.key": "\(key)"])
                return try await info(name, updated, revision: result.revision)
            }
        }
        throw CapstanError(.conflict, "rollout \(name) is changing too fast; gave up after \(Self.maxAttempts) attempts")
    }

    /// A config candidate as stored, with the revision it was written at.
    func configCandidate(_ name: String, key: String) async throws -> (record: ConfigRecord, revision: Int64)? {
        guard let kv = try await store.get(StoreLayout.configCandidate(name, key: key)) else { return nil }
        return (try ConfigRecord.decode(kv.value), kv.modRevision)
    }
}

extension RolloutService {
    /// Stores the next definition of template `template` as a candidate of the open rollout
    /// `name`: member nodes render it in place of the main one until it is promoted.
    ///
    /// - Parameter onlyOn: as for `TemplateService.put`, the author's job run selectors.
    public func putTemplateCandidate(_ name: String, template: String, spec: TemplateSpec, onlyOn: [String]?, author: String)
        async throws -> RolloutInfo
    {
        try TemplateService.validate(name: template, spec: spec)
        guard let main = try await store.get(StoreLayout.template(template)) else { throw TemplateService.notFound(template) }
        let time = now()
        let encoded = try RecordCoding.encoder.encode(TemplateService.Record(spec: spec, updatedAt: time, onlyOn: onlyOn))
        let indexKey = StoreLayout.templateRollout(template)
        for _ in 0..<Self.maxAttempts {
            let (record, revision) = try await read(name)
            guard record.state.isOpen else {
                throw CapstanError(.conflict, "rollout \(name) is \(record.state.rawValue): it takes no more candidates")
            }
            let held = try await store.get(indexKey)
            if let held, String(decoding: held.value, as: UTF8.self) != name {
                throw CapstanError(
                    .conflict,
                    "template \(template) is already under rollout \(String(decoding: held.value, as: UTF8.self)): one open rollout per template")
            }
            if record.candidate(.template, template) == nil, record.candidates.count >= Self.maxCandidates {
                throw CapstanError(.invalidArgument, "rollout \(name) holds \(Self.maxCandidates) candidates, the most one rollout may")
            }
            var updated = record
            updated.candidates.removeAll { $0.kind == .template && $0.name == template }
            updated.candidates.append(RolloutCandidate(kind: .template, name: template, action: .put, revision: 0, author: author, time: time))
            updated.transitions.append(
                RolloutTransition(action: "candidate", actor: author, time: time, detail: "new definition of template \(template)"))
            let result = try await store.txn(
                TxnRequest(
                    compares: [
                        Compare(key: StoreLayout.rollout(name), .modRevision(revision)),
                        held.map { Compare(key: indexKey, .modRevision($0.modRevision)) } ?? .absent(indexKey),
                        Compare(key: StoreLayout.template(template), .modRevision(main.modRevision)),
                    ],
                    success: [
                        .put(key: StoreLayout.templateCandidate(name, template: template), value: encoded),
                        .put(key: StoreLayout.rollout(name), value: try updated.encoded()),
                    ] + Self.indexOps(name, updated)))
            if result.succeeded { return try await info(name, updated, revision: result.revision) }
        }
        throw CapstanError(.conflict, "rollout \(name) is changing too fast; gave up after \(Self.maxAttempts) attempts")
    }
}
