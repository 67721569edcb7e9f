import CapstanCore
import CapstanStore
import Crypto
import Foundation
import Logging

/// The audit log: one entry per mutating or denied request, each chained to the one before by
/// SHA-256, so that an edited, removed or inserted entry breaks the chain (`verify()`).
///
/// Entries live at `audit/SEQUENCE`; `audit-head` holds the last sequence and hash. Appends from
/// every replica go through a compare-and-swap on the head, so the chain has one order. On a
/// replica, concurrent appends are written together: the first caller writes the batch the others
/// joined while it waited.
public actor AuditLog {
    /// An entry before it is placed in the chain.
    public struct Draft: Sendable {
        var actorKind: AuditEntry.ActorKind
        var actorID: String
        var actorDescription: String
        var action: String
        var method: String
        var resource: String
        var client: String
        var status: Int
        var allowed: Bool
        var revisionBefore: Int64?
        var revisionAfter: Int64?
        var contentHash: String?

        public init(
            actorKind: AuditEntry.ActorKind, actorID: String, actorDescription: String, action: String, method: String, resource: String,
            client: String, status: Int, allowed: Bool, revisionBefore: Int64? = nil, revisionAfter: Int64? = nil, contentHash: String? = nil
        ) {
            self.actorKind = actorKind
            self.actorID = actorID
            self.actorDescription = actorDescription
            self.action = action
            self.method = method
            self.resource = resource
            self.client = client
            self.status = status
            self.allowed = allowed
            self.revisionBefore = revisionBefore
            self.revisionAfter = revisionAfter
            self.contentHash = contentHash
        }
    }

    struct Head: Codable {
        var sequence: Int64
        var hash: String

        /// What `RecordCoding.encoder` writes for it, written by hand (it is written with every batch).
        var encoded: Data {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(100)
            bytes += "{\"sequence\":\(sequence),\"hash\":".utf8
            JSONText.appendQuoted(hash, to: &bytes)
            bytes.append(UInt8(ascii: "}"))
            return Data(bytes)
        }
    }

    public static let genesisHash = String(repeating: "0", count: 64)

    let store: any KeyValueStore
    let logger: Logger
    /// Appends waiting for the submitting caller to take them. A waiter is resumed with `true` once
    /// its entries are submitted, or with `false` to submit the next batch itself.
    private var pending: [([Queued], CheckedContinuation<Bool, Never>)] = []
    private var writing = false
    /// The head as it will be once every submitted batch has committed, with its stored bytes
    /// (the next batch's compare-and-swap expects them); nil when it must be read again.
    private var expected: (head: Head, stored: Data?)? {
        didSet { if expected == nil { resets += 1 } }
    }
    /// Times `expected` was dropped. A batch remembers the count it was chained at: one submitted
    /// across a drop does not set `expected`, and the failure of one chained before a drop (which
    /// a retry already followed) does not drop the retry's head.
    private var resets = 0
    /// The latest entry time chained: a retried entry is not chained with a time before an entry
    /// ahead of it, so the chain's times never go back (`list(since:)` stops at the first older).
    private var lastTime = Date.distantPast
    /// Tickets of the entries appended and not yet committed (or given up on).
    private var unsettled: Set<Int> = []
    private var lastTicket = 0
    /// `settled()` callers, each with the last ticket it waits for.
    private var settling: [(ticket: Int, continuation: CheckedContinuation<Void, Never>)] = []

    /// An entry waiting for its place in the chain: its time, its ticket, and how often it lost
    /// that place.
    struct Queued: Sendable {
        var draft: Draft
        var time: Date
        var ticket: Int
        var attempts = 0
    }

    public init(store: any KeyValueStore, logger: Logger = Logger(label: "capstan.audit")) {
        self.store = store
        self.logger = logger
    }

    /// Appends an entry: returns once it is submitted in the store's commit order (a write that
    /// follows takes a later revision) without waiting for its commit. A batch that loses its
    /// place (another replica appended first) is chained again in the background; a store failure
    /// is logged. Readers call `settled()` first, to see every entry appended before.
    ///
    /// The first caller submits; callers that come while it submits wait, and the next batch is
    /// submitted by the first of them, with the others' entries.
    public func append(_ draft: Draft) async {
        lastTicket += 1
        unsettled.insert(lastTicket)
        await enqueue([Queued(draft: draft, time: Date(), ticket: lastTicket)])
    }

    private func enqueue(_ entries: [Queued]) async {
        if writing {
            let submitted = await withCheckedContinuation { pending.append((entries, $0)) }
            if submitted { return }
            // Handed the lead: submit these entries and what joined since.
        }
        writing = true
        var batch = entries
        var joined: [CheckedContinuation<Bool, Never>] = []
        while let next = pending.first, batch.count + next.0.count <= Self.maxBatch {
            batch += next.0
            joined.append(next.1)
            pending.removeFirst()
        }
        await submit(batch)
        for continuation in joined { continuation.resume(returning: true) }
        // The next waiter submits the next batch: no caller waits on more than one batch after its own.
        if pending.isEmpty {
            writing = false
        } else {
            pending.removeFirst().1.resume(returning: false)
        }
    }

    /// Chains `entries` onto the expected head and submits them as one transaction.
    private func submit(_ entries: [Queued]) async {
        do {
            let (start, startStored) = try await expectedHead()
            var head = start
            var ops: [TxnOp] = []
            var compares = [startStored.map { Compare(key: StoreLayout.auditHead, .value($0)) } ?? .absent(StoreLayout.auditHead)]
            for queued in entries {
                let draft = queued.draft
                lastTime = max(lastTime, queued.time)
                var entry = AuditEntry(
                    sequence: head.sequence + 1, time: Self.format(lastTime), actorKind: draft.actorKind, actorID: draft.actorID,
                    actorDescription: draft.actorDescription, action: draft.action, method: draft.method, resource: draft.resource,
                    client: draft.client, status: draft.status, outcome: draft.allowed ? "allowed" : "denied",
                    revisionBefore: draft.revisionBefore, revisionAfter: draft.revisionAfter, contentHash: draft.contentHash,
                    previousHash: head.hash, hash: "")
                let (hash, stored) = Self.sealed(entry)
                entry.hash = hash
                ops.append(.put(key: Self.key(entry.sequence), value: stored))
                // An entry is never overwritten, whatever happened to the head.
                compares.append(.absent(Self.key(entry.sequence)))
                head = Head(sequence: entry.sequence, hash: entry.hash)
            }
            let headStored = head.encoded
            ops.append(.put(key: StoreLayout.auditHead, value: headStored))
            let chainedAt = resets
            let submitted = await store.submit(TxnRequest(compares: compares, success: ops))
            if case .success(let result)? = submitted.finished, !result.succeeded {
                // Known lost already (engines that commit before returning): chain the next batch
                // onto the head as it is, not onto this one.
                expected = nil
            } else if resets == chainedAt {
                expected = (head, headStored)
            }
            Task {
                let outcome: Result<TxnResult, any Error>
                do { outcome = .success(try await submitted.result()) } catch { outcome = .failure(error) }
                await self.settle(entries, chainedAt: chainedAt, outcome: outcome)
            }
        } catch {
            // Nothing was submitted (the head could not be read, or an entry not encoded): try again.
            expected = nil
            retryLater(entries, error: error)
        }
    }

    /// The most entries in one transaction: each takes a compare and a put, and etcd allows 128
    /// of each by default (`--max-txn-ops`), the head's included.
    static let maxBatch = 120

    /// Chains `entries` again from a task of its own (the caller may be the submitting lead, whom
    /// a retry would wait for); entries that failed 20 times are given up on and logged.
    private func retryLater(_ entries: [Queued], error: any Error) {
        let again = nextAttempt(entries, reason: "\(error)")
        if !again.isEmpty {
            Task {
                try? await Task.sleep(for: .milliseconds(10 * again[0].attempts))
                await self.enqueue(again)
            }
        }
    }

    /// The entries with one more attempt counted; those that had their 20 are given up on and logged.
    private func nextAttempt(_ entries: [Queued], reason: String) -> [Queued] {
        let again = entries.filter { $0.attempts < 20 }.map {
            Queued(draft: $0.draft, time: $0.time, ticket: $0.ticket, attempts: $0.attempts + 1)
        }
        if again.count < entries.count {
            logger.error("audit entries were not stored", metadata: ["audit.count": "\(entries.count - again.count)", "error": "\(reason)"])
            done(entries.filter { $0.attempts >= 20 })
        }
        return again
    }

    /// The head the next batch chains onto: as the last batch left it, or read from the store.
    private func expectedHead() async throws -> (Head, Data?) {
        if let expected { return (expected.head, expected.stored) }
        let headKV = try await store.get(StoreLayout.auditHead)
        let head = try headKV.map { try RecordCoding.decoder.decode(Head.self, from: $0.value) } ?? Head(sequence: 0, hash: Self.genesisHash)
        return (head, headKV?.value)
    }

    /// A batch's commit: done, or chained again when it lost its place, or logged when the store failed.
    private func settle(_ entries: [Queued], chainedAt: Int, outcome: Result<TxnResult, any Error>) async {
        switch outcome {
        case .success(let result) where result.succeeded:
            done(entries)
        case .success:
            // Another replica appended first, or an earlier batch of ours failed: chain onto the
            // head as it is now. Batches chained after this one fail the same way and come here
            // too; they do not drop the head a retry chained since.
            if chainedAt == resets { expected = nil }
            let again = nextAttempt(entries, reason: "the audit head kept changing under 20 attempts")
            if !again.isEmpty { await enqueue(again) }
        case .failure(let error):
            // The write may or may not have been applied (so it is not sent again, which could
            // record it twice): read the head again before the next one.
            if chainedAt == resets { expected = nil }
            logger.error("audit entries were not stored", metadata: ["audit.count": "\(entries.count)", "error": "\(error)"])
            done(entries)
        }
    }

    /// Entries committed or given up on: wakes the readers that waited for them.
    private func done(_ entries: [Queued]) {
        for queued in entries { unsettled.remove(queued.ticket) }
        let oldest = unsettled.min() ?? Int.max
        settling.removeAll { waiter in
            guard waiter.ticket < oldest else { return false }
            waiter.continuation.resume()
            return true
        }
    }

    /// Returns once every entry appended before the call is committed (or its failure logged):
    /// a reader after a write sees that write's entry.
    public func settled() async {
        guard let oldest = unsettled.min(), oldest <= lastTicket else { return }
        let ticket = lastTicket
        await withCheckedContinuation { settling.append((ticket, $0)) }
    }

    // MARK: Reading

    /// Entries newest first, up to `limit`, that pass the filters.
    public func list(since: Date? = nil, actor: String? = nil, resourcePrefix: String? = nil, limit: Int = 100) async throws -> [AuditEntry] {
        await settled()
        var found: [AuditEntry] = []
        var end: String? = nil
        let cutoff = since.map(Self.format)
        while found.count < limit {
            let range: KeyRange = end.map { .interval(from: StoreLayout.audit, to: $0) } ?? .prefix(StoreLayout.audit)
            let page = try await store.range(RangeRequest(range, limit: 500, descending: true))
            for kv in page.kvs {
                guard let entry = try? Self.decoder.decode(AuditEntry.self, from: kv.value) else { continue }
                if let cutoff, entry.time < cutoff { return found }
                if let actor, !(entry.actorID == actor || entry.actorDescription == actor) { continue }
                if let resourcePrefix, !entry.resource.hasPrefix(resourcePrefix) { continue }
                found.append(entry)
                if found.count == limit { break }
            }
            guard page.more, let last = page.kvs.last else { break }
            end = last.key
        }
        return found
    }

    /// Walks the retained chain from its oldest entry and checks every link and hash, every page
    /// and the head read at one store revision: appends meanwhile do not look like breaks.
    public func verify() async throws -> AuditVerification {
        await settled()
        var count = 0
        // The head and the first page in one read-only transaction (one snapshot); later pages at
        // that transaction's revision.
        var pinned: Int64?
        var head: Head?
        var firstPage: RangeResult?
        var first: Int64?
        var previous: AuditEntry?
        var start = StoreLayout.audit
        // The prefix's end: "audit/" with its last byte raised ("audit0").
        let end = String(StoreLayout.audit.dropLast()) + "0"
        func broken(_ sequence: Int64?, _ problem: String) -> AuditVerification {
            AuditVerification(
                valid: false, entries: count, firstSequence: first, lastSequence: previous?.sequence, headHash: previous?.hash,
                brokenSequence: sequence, problem: problem)
        }
        let opening = try await store.txn(
            TxnRequest(success: [
                .range(RangeRequest(.key(StoreLayout.auditHead))),
                .range(RangeRequest(.interval(from: start, to: end), limit: 1000)),
            ]))
        guard opening.results.count == 2, case .range(let headRange) = opening.results[0], case .range(let page) = opening.results[1] else {
            throw CapstanError(.internal, "store answered a read transaction without its results")
        }
        pinned = opening.revision
        head = try headRange.kvs.first.map { try RecordCoding.decoder.decode(Head.self, from: $0.value) }
        firstPage = page
        while true {
            let page: RangeResult
            if let opened = firstPage {
                page = opened
                firstPage = nil
            } else {
                page = try await store.range(RangeRequest(.interval(from: start, to: end), revision: pinned, limit: 1000))
            }
            for kv in page.kvs {
                guard let entry = try? Self.decoder.decode(AuditEntry.self, from: kv.value) else {
                    return broken(previous.map { $0.sequence + 1 }, "the entry at \(kv.key) is not a readable entry")
                }
                if kv.key != Self.key(entry.sequence) {
                    return broken(entry.sequence, "entry \(entry.sequence) is stored under \(kv.key)")
                }
                if let previous {
                    if entry.sequence != previous.sequence + 1 {
                        return broken(previous.sequence + 1, "entry \(previous.sequence + 1) is missing")
                    }
                    if entry.previousHash != previous.hash {
                        return broken(entry.sequence, "entry \(entry.sequence) does not link to entry \(previous.sequence)'s hash")
                    }
                } else {
                    first = entry.sequence
                    if entry.sequence == 1, entry.previousHash != Self.genesisHash {
                        return broken(1, "the first entry does not start the chain")
                    }
                }
                // The hash covers the fields; the stored bytes must be exactly the fields' JSON, so
                // an added field or spacing (which a decoder would pass over) breaks the chain too.
                let (hash, stored) = Self.sealed(entry)
                if hash != entry.hash {
                    return broken(entry.sequence, "entry \(entry.sequence) was changed after it was written: its hash does not match")
                }
                if stored != kv.value {
                    return broken(entry.sequence, "entry \(entry.sequence) was changed after it was written: it holds more than its hashed fields")
                }
                previous = entry
                count += 1
            }
            guard page.more, let last = page.kvs.last else { break }
            start = last.key + "\u{0}"
        }
        if head == nil, let previous {
            return broken(previous.sequence, "the chain's head is gone while entries remain")
        }
        if let head, head.sequence != previous?.sequence || head.hash != previous?.hash {
            return broken(previous.map { $0.sequence + 1 } ?? head.sequence, "the chain ends before its head, entry \(head.sequence)")
        }
        return AuditVerification(valid: true, entries: count, firstSequence: first, lastSequence: previous?.sequence, headHash: previous?.hash)
    }

    // MARK: Retention

    /// Removes entries older than `maxAge`, always keeping the newest, every `interval` until cancelled.
    public func runRetention(maxAge: Duration, interval: Duration = .seconds(600)) async throws {
        while true {
            do {
                try await prune(olderThan: Date().addingTimeInterval(-TimeInterval(maxAge.components.seconds)))
            } catch is CancellationError {
                return
            } catch {
                logger.warning("audit retention failed", metadata: ["error": "\(error)"])
            }
            try await Task.sleep(for: interval)
        }
    }

    /// Deletes the oldest entries written before `cutoff`; the newest entry is always kept so that the
    /// chain keeps its anchor.
    func prune(olderThan cutoff: Date) async throws {
        let cutoffText = Self.format(cutoff)
        let head = try await store.get(StoreLayout.auditHead).map { try RecordCoding.decoder.decode(Head.self, from: $0.value) }
        guard let head else { return }
        while true {
            let page = try await store.range(RangeRequest(.prefix(StoreLayout.audit), limit: 500))
            let old = page.kvs.prefix { kv in
                guard let entry = try? Self.decoder.decode(AuditEntry.self, from: kv.value) else { return false }
                return entry.time < cutoffText && entry.sequence < head.sequence
            }
            guard let last = old.last else { return }
            _ = try await store.delete(.interval(from: StoreLayout.audit, to: last.key + "\u{0}"))
            if old.count < page.kvs.count || !page.more { return }
        }
    }

    // MARK: Coding

    static func key(_ sequence: Int64) -> String {
        var bytes = Array(StoreLayout.audit.utf8)
        ASCIIDecimal.append(sequence, width: 20, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static let decoder = JSONDecoder()

    /// The entry as `encoder` writes it (sorted keys, slashes unescaped, absent optionals left
    /// out), byte for byte, written by hand: every audited request encodes one, and the generic
    /// encoder was a twentieth of a put's server time.
    static func json(_ entry: AuditEntry) -> Data {
        let (head, tail) = jsonAroundHash(entry)
        var bytes = head
        JSONText.appendQuoted(entry.hash, to: &bytes)
        bytes += tail
        return Data(bytes)
    }

    /// The entry's JSON before the value of `hash` (up to `"hash":`) and after it (from the comma
    /// on). The hash covers the JSON with `hash` empty, so both forms are these two parts with
    /// `""` or the quoted hash between them: built once, in bytes (text appends were a twentieth
    /// of a put's server time).
    static func jsonAroundHash(_ entry: AuditEntry) -> (head: [UInt8], tail: [UInt8]) {
        var head: [UInt8] = []
        head.reserveCapacity(320 + entry.resource.utf8.count)
        func field(_ name: String, _ value: String, into bytes: inout [UInt8]) {
            bytes += name.utf8
            JSONText.appendQuoted(value, to: &bytes)
            bytes.append(UInt8(ascii: ","))
        }
        head += #"{"action":"#.utf8
        JSONText.appendQuoted(entry.action, to: &head)
        head.append(UInt8(ascii: ","))
        field(#""actorDescription":"#, entry.actorDescription, into: &head)
        field(#""actorID":"#, entry.actorID, into: &head)
        field(#""actorKind":"#, entry.actorKind.rawValue, into: &head)
        field(#""client":"#, entry.client, into: &head)
        if let contentHash = entry.contentHash { field(#""contentHash":"#, contentHash, into: &head) }
        head += #""hash":"#.utf8
        var tail: [UInt8] = []
        tail.reserveCapacity(256 + entry.resource.utf8.count)
        tail.append(UInt8(ascii: ","))
        field(#""method":"#, entry.method, into: &tail)
        field(#""outcome":"#, entry.outcome, into: &tail)
        field(#""previousHash":"#, entry.previousHash, into: &tail)
        field(#""resource":"#, entry.resource, into: &tail)
        if let revisionAfter = entry.revisionAfter { tail += "\"revisionAfter\":\(revisionAfter),".utf8 }
        if let revisionBefore = entry.revisionBefore { tail += "\"revisionBefore\":\(revisionBefore),".utf8 }
        tail += "\"sequence\":\(entry.sequence),\"status\":\(entry.status),\"time\":".utf8
        JSONText.appendQuoted(entry.time, to: &tail)
        tail.append(UInt8(ascii: "}"))
        return (head, tail)
    }

    /// The entry's hash (SHA-256 of its JSON with `hash` empty) and its stored JSON, hash filled in.
    static func sealed(_ entry: AuditEntry) -> (hash: String, stored: Data) {
        let (head, tail) = jsonAroundHash(entry)
        var hasher = SHA256()
        hasher.update(data: head)
        hasher.update(data: [UInt8(ascii: "\""), UInt8(ascii: "\"")])
        hasher.update(data: tail)
        let hash = ConfigRecord.hex(hasher.finalize())
        var stored = Data(capacity: head.count + 66 + tail.count)
        stored.append(contentsOf: head)
        stored.append(UInt8(ascii: "\""))
        stored.append(contentsOf: hash.utf8)
        stored.append(UInt8(ascii: "\""))
        stored.append(contentsOf: tail)
        return (hash, stored)
    }

    /// `2026-11-21T23:59:01.123Z`: a value type, so no formatter is made per entry.
    static let timeFormat = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    nonisolated static func format(_ date: Date) -> String {
        date.formatted(timeFormat)
    }
}
