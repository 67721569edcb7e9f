import CapstanCore
import CapstanStore
import Crypto
import Foundation

extension ConfigService {
    // MARK: Writes

    /// Writes a new version of `key`.
    ///
    /// - Parameters:
    ///   - format: the declared format; nil infers it from the key's extension.
    ///   - ifRevision: write only if the key's current revision is this (0: only if absent).
    ///   - secret: store the content encrypted (see `seal`). A secret's content is not parsed, so
    ///     that no error message can quote it.
    /// - Throws: `invalid_content` with line and column when the content does not parse,
    ///   `precondition_failed` when `ifRevision` does not match.
    @discardableResult
    public func put(
        _ key: ConfigKey,
        content: Data,
        format: ConfigFormat? = nil,
        comment: String = "",
        author: String,
        ifRevision: Int64? = nil,
        secret: Bool = false
    ) async throws -> ConfigVersionInfo {
        try await put(
            key, content: content, format: format, comment: comment, author: author, ifRevision: ifRevision, secret: secret,
            contentSHA256: nil)
    }

    /// `put`, given the content's SHA-256 in lowercase hex when the caller has it already (the
    /// audit trail hashes every body it records); used for plain content only, checked in debug builds.
    func put(
        _ key: ConfigKey,
        content: Data,
        format: ConfigFormat?,
        comment: String,
        author: String,
        ifRevision: Int64?,
        secret: Bool,
        contentSHA256: String?
    ) async throws -> ConfigVersionInfo {
        assert(contentSHA256 == nil || contentSHA256 == ConfigRecord.hex(SHA256.hash(data: content)), "a wrong content hash was given")
        let format = format ?? ConfigFormat.infer(fromPath: key.path)
        guard secret else {
            try validate(content, format: format, key: key)
            return try await write(key, author: author, ifRevision: ifRevision) { sequence in
                ConfigRecord(
                    sequence: sequence, action: .put, format: format, content: content,
                    author: author, comment: comment, time: Date(), sha256: contentSHA256)
            }
        }
        try checkSize(content, key: key)
        let sealed = try seal(content, key: key)
        return try await write(key, author: author, ifRevision: ifRevision, secret: true, extraWrites: [sealed.dataKeyWrite]) { sequence in
            ConfigRecord(
                sequence: sequence, action: .put, format: format, content: sealed.ciphertext,
                author: author, comment: comment, time: Date(), dataKeyID: sealed.dataKeyID)
        }
    }

    /// Deletes `key`; its history stays (a delete is a version of its own) until the namespace goes.
    @discardableResult
    public func delete(_ key: ConfigKey, author: String, ifRevision: Int64? = nil) async throws -> ConfigVersionInfo {
        try await write(key, author: author, ifRevision: ifRevision, deleting: true) { sequence in
            ConfigRecord(
                sequence: sequence, action: .delete, format: .text, content: Data(),
                author: author, comment: "", time: Date())
        }
    }

    /// Writes the content `key` had at revision `to` (default: the version before the current one)
    /// as a new version.
    @discardableResult
    public func rollback(_ key: ConfigKey, to revision: Int64? = nil, author: String, comment: String = "", ifRevision: Int64? = nil)
        async throws -> ConfigVersionInfo
    {
        let target: Entry
        if let revision {
            target = try await versionAt(key, revision: revision)
        } else {
            let entries = try await historyEntries(key, limit: nil)
            if entries.isEmpty { throw try await notFound(key) }
            guard entries.count >= 2, let previous = entries.dropFirst().first(where: { $0.info.action == .put }) else {
                throw CapstanError(.revisionNotFound, "config \(key) has no earlier version to roll back to")
            }
            target = previous
        }
        let note = "rollback to revision \(target.info.revision)" + (comment.isEmpty ? "" : ": \(comment)")
        // A secret is decrypted here and sealed again under a new data key: nothing leaves the server.
        return try await put(
            key, content: try await reveal(target, key: key), format: target.info.format, comment: note, author: author,
            ifRevision: ifRevision, secret: target.dataKeyID != nil)
    }

    func validate(_ content: Data, format: ConfigFormat, key: ConfigKey) throws {
        try checkSize(content, key: key)
        guard let text = String(validating: content, as: UTF8.self) else {
            throw CapstanError(.invalidEncoding, "config \(key) is not valid UTF-8 text")
        }
        _ = try format.parse(text)
    }

    func checkSize(_ content: Data, key: ConfigKey) throws {
        if content.count > configuration.maxContentSize {
            throw CapstanError(
                .payloadTooLarge,
                "config \(key) is \(ByteSize.format(content.count)); the limit is \(ByteSize.format(configuration.maxContentSize))")
        }
    }

    /// One optimistic write: read the namespace and the key, then commit both records in one
    /// transaction that fails if either changed meanwhile; retry on a lost race unless the caller
    /// pinned a revision.
    private func write(
        _ key: ConfigKey,
        author: String,
        ifRevision: Int64?,
        deleting: Bool = false,
        secret: Bool = false,
        extraWrites: [TxnOp] = [],
        makeRecord: @Sendable (Int64) throws -> ConfigRecord
    ) async throws -> ConfigVersionInfo {
        try await keyLock.withLock(key.description) {
            try await writeOnce(
                key, ifRevision: ifRevision, deleting: deleting, secret: secret, extraWrites: extraWrites, makeRecord: makeRecord)
        }
    }

    /// - Parameter extraWrites: committed in the same transaction (a secret's wrapped data key).
    private func writeOnce(
        _ key: ConfigKey,
        ifRevision: Int64?,
        deleting: Bool,
        secret: Bool,
        extraWrites: [TxnOp],
        makeRecord: @Sendable (Int64) throws -> ConfigRecord
    ) async throws -> ConfigVersionInfo {
        let storeKey = StoreLayout.config(key)
        // First try what this process last knew (no read); a compare that fails sends every later
        // attempt through a fresh read. A plain write over what was a secret is decided on a read.
        var guess = writeStates.guess(key, namespace: key.namespace, deleting: deleting)
        if guess?.currentIsSecret == true, !secret, !deleting { guess = nil }
        for attempt in 0..<Self.maxAttempts {
            if attempt > 1 {
                // Another replica won the race: back off a little, with jitter, and re-read.
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...min(50, 1 << attempt))))
            }
            let state: WriteStates.State
            if let known = guess {
                state = known
                guess = nil
            } else {
                state = try await readState(key)
                if let ifRevision, state.currentRevision != ifRevision {
                    throw CapstanError(
                        .preconditionFailed, "config \(key) is at revision \(state.currentRevision), not \(ifRevision)")
                }
                if deleting, state.currentRevision == 0 {
                    throw CapstanError(.configNotFound, "config \(key) not found")
                }
                // A slip of a missing --secret must not put a secret's next value in clear.
                if state.currentIsSecret, !secret, !deleting {
                    throw CapstanError(
                        .invalidArgument, "config \(key) is a secret: write it with --secret (secret=true); to keep it plain from now on, delete it first")
                }
            }
            let sequence = state.lastSequence + 1
            let record = try makeRecord(sequence)
            let encoded = try record.encoded()
            let historyKey = StoreLayout.history(key, sequence: sequence)
            let ops = versionOps(key, sequence: sequence, encoded: encoded, deleting: deleting) + extraWrites
            let result = try await store.txn(
                TxnRequest(
                    compares: [
                        Compare(key: StoreLayout.namespace(key.namespace), .modRevision(state.namespaceRevision)),
                        Compare(key: storeKey, .modRevision(ifRevision ?? state.currentRevision)),
                        // The sequence is free: guards a guessed one against history written elsewhere.
                        .absent(historyKey),
                        // No rollout holds the key (a plain write never overwrites gray).
                        .absent(StoreLayout.configRollout(key.description)),
                    ],
                    success: ops))
            if result.succeeded {
                writeStates.record(
                    key, namespace: key.namespace, namespaceRevision: state.namespaceRevision,
                    currentRevision: deleting ? 0 : result.revision, sequence: sequence, secret: secret && !deleting)
                return record.info(key: key.description, revision: result.revision)
            }
            writeStates.forget(key, namespace: key.namespace)
        }
        throw CapstanError(.conflict, "config \(key) is changing too fast; gave up after \(Self.maxAttempts) attempts")
    }

    /// The operations that write a version: the key (or its deletion), its history entry, and
    /// the pruning of history past retention.
    func versionOps(_ key: ConfigKey, sequence: Int64, encoded: Data, deleting: Bool) -> [TxnOp] {
        let storeKey = StoreLayout.config(key)
        var ops: [TxnOp] = [
            deleting ? .delete(.key(storeKey)) : .put(key: storeKey, value: encoded),
            .put(key: StoreLayout.history(key, sequence: sequence), value: encoded),
        ]
        // Keep the newest versions and the very first one: entry 1 marks that the key has a
        // history, which is what makes guessing a new key's sequence safe (see WriteStates).
        let pruneBelow = sequence - Int64(configuration.historyRetention) + 1
        if pruneBelow > 2 {
            ops.append(.delete(.interval(from: StoreLayout.history(key, sequence: 2), to: StoreLayout.history(key, sequence: pruneBelow))))
        }
        return ops
    }

    /// The refusal of a plain write to a key a rollout holds.
    static func heldByRollout(_ key: ConfigKey, rollout: String) -> CapstanError {
        CapstanError(
            .conflict,
            "config \(key) is under rollout \(rollout): write a candidate with --rollout \(rollout), promote or abort the rollout, or pass --force to abort it first")
    }

    /// One consistent read of everything a write of `key` depends on.
    ///
    /// - Parameter underRollout: the rollout the write belongs to (its promotion); nil for a
    ///   plain write, refused when a rollout holds the key.
    func readState(_ key: ConfigKey, underRollout: String? = nil) async throws -> WriteStates.State {
        let read = try await store.txn(
            TxnRequest(success: [
                .range(RangeRequest(.key(StoreLayout.namespace(key.namespace)))),
                // With its value: whether the current version is a secret.
                .range(RangeRequest(.key(StoreLayout.config(key)))),
                .range(RangeRequest(.prefix(StoreLayout.historyPrefix(key)), limit: 1, keysOnly: true, descending: true)),
                .range(RangeRequest(.key(StoreLayout.configRollout(key.description)))),
            ]))
        guard read.results.count == 4, case .range(let namespaceRange) = read.results[0],
            case .range(let currentRange) = read.results[1], case .range(let latestHistory) = read.results[2],
            case .range(let rolloutRange) = read.results[3]
        else {
            throw CapstanError(.internal, "store answered a read transaction without its results")
        }
        if underRollout == nil, let held = rolloutRange.kvs.first {
            throw Self.heldByRollout(key, rollout: String(decoding: held.value, as: UTF8.self))
        }
        let namespace = try activeNamespace(namespaceRange.kvs.first, name: key.namespace)
        return WriteStates.State(
            namespaceRevision: namespace.modRevision,
            currentRevision: currentRange.kvs.first?.modRevision ?? 0,
            lastSequence: latestHistory.kvs.first.map { Self.sequence(of: $0.key) } ?? 0,
            currentIsSecret: currentRange.kvs.first.map { (try? ConfigRecord.decode($0.value))?.isSecret ?? false } ?? false)
    }
}
