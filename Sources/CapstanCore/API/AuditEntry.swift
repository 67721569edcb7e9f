import Foundation

/// One record of the audit log: a mutating or denied request, chained to the one before by hash.
public struct AuditEntry: Codable, Sendable, Hashable {
    public enum ActorKind: String, Codable, Sendable, Hashable {
        /// `server`: the server itself (a rollout's timed step or failed gate).
        case token, node, anonymous, server
    }

    /// 1 for the first entry an installation wrote; one more for each entry after it.
    public var sequence: Int64
    /// ISO 8601 with milliseconds, UTC.
    public var time: String
    public var actorKind: ActorKind
    /// The token id or the node name; empty for anonymous.
    public var actorID: String
    /// The token's description.
    public var actorDescription: String
    /// `resource.action` as the access rules name it (`config.write`), or `agent.enroll`.
    public var action: String
    public var method: String
    /// The request path, with its query.
    public var resource: String
    public var client: String
    /// The HTTP status of the answer.
    public var status: Int
    /// `allowed` when the request was let through to its route, else `denied`.
    public var outcome: String
    /// The store revision before the request and after it (mutating requests that were let through).
    public var revisionBefore: Int64?
    public var revisionAfter: Int64?
    /// SHA-256 of the request body, hex; nil without a body.
    public var contentHash: String?
    /// The hash of the entry before (64 zeros for the first one).
    public var previousHash: String
    /// SHA-256 of this entry's other fields (see `AuditChain`).
    public var hash: String

    public init(
        sequence: Int64, time: String, actorKind: ActorKind, actorID: String, actorDescription: String, action: String, method: String,
        resource: String, client: String, status: Int, outcome: String, revisionBefore: Int64?, revisionAfter: Int64?,
        contentHash: String?, previousHash: String, hash: String
    ) {
        self.sequence = sequence
        self.time = time
        self.actorKind = actorKind
        self.actorID = actorID
        self.actorDescription = actorDescription
        self.action = action
        self.method = method
        self.resource = resource
        self.client = client
        self.status = status
        self.outcome = outcome
        self.revisionBefore = revisionBefore
        self.revisionAfter = revisionAfter
        self.contentHash = contentHash
        self.previousHash = previousHash
        self.hash = hash
    }
}

/// `GET /v1/audit`.
public struct AuditList: Codable, Sendable, Hashable {
    public var items: [AuditEntry]

    public init(items: [AuditEntry]) {
        self.items = items
    }
}

/// `GET /v1/audit/verify`: whether the retained chain is whole.
public struct AuditVerification: Codable, Sendable, Hashable {
    public var valid: Bool
    /// Entries checked.
    public var entries: Int
    public var firstSequence: Int64?
    public var lastSequence: Int64?
    /// The hash the chain ends on: keep it elsewhere to detect a rewrite of the whole tail.
    public var headHash: String?
    /// The first entry that does not check out, and why.
    public var brokenSequence: Int64?
    public var problem: String?

    public init(
        valid: Bool, entries: Int, firstSequence: Int64?, lastSequence: Int64?, headHash: String?, brokenSequence: Int64? = nil,
        problem: String? = nil
    ) {
        self.valid = valid
        self.entries = entries
        self.firstSequence = firstSequence
        self.lastSequence = lastSequence
        self.headHash = headHash
        self.brokenSequence = brokenSequence
        self.problem = problem
    }
}
