import Foundation

/// A read of a key range, at the latest or an older revision.
public struct RangeRequest: Sendable, Hashable {
    public var range: KeyRange
    /// Read the state as of this revision; nil reads the latest.
    public var revision: Int64?
    /// Return at most this many keys (in key order); `more` tells whether some were left out.
    public var limit: Int?
    /// Leave values out (they come back empty).
    public var keysOnly: Bool
    /// Return only the count.
    public var countOnly: Bool
    /// Return keys in descending key order (etcd's `sort_order: DESCEND` on the key).
    public var descending: Bool

    public init(
        _ range: KeyRange,
        revision: Int64? = nil,
        limit: Int? = nil,
        keysOnly: Bool = false,
        countOnly: Bool = false,
        descending: Bool = false
    ) {
        self.range = range
        self.revision = revision
        self.limit = limit
        self.keysOnly = keysOnly
        self.countOnly = countOnly
        self.descending = descending
    }
}

public struct RangeResult: Sendable, Hashable {
    public var kvs: [KeyValue]
    /// Number of keys in the range, regardless of `limit`.
    public var count: Int
    /// Whether `limit` left keys out.
    public var more: Bool
    /// The store's revision when the read was served.
    public var revision: Int64

    public init(kvs: [KeyValue], count: Int, more: Bool, revision: Int64) {
        self.kvs = kvs
        self.count = count
        self.more = more
        self.revision = revision
    }
}

/// One operation of a transaction.
public enum TxnOp: Sendable, Hashable {
    case put(key: String, value: Data, lease: LeaseID? = nil)
    case delete(KeyRange)
    case range(RangeRequest)
}

/// The outcome of one operation of a transaction, in the order of the operations.
public enum TxnOpResult: Sendable, Hashable {
    /// The key as written (its `modRevision` is the transaction's revision).
    case put(KeyValue)
    /// How many keys were deleted.
    case delete(deleted: Int)
    case range(RangeResult)
}

/// An atomic transaction: if every compare holds, run `success`, otherwise `failure`.
///
/// This is etcd's `Txn`; a transaction that writes anything commits as exactly one new revision.
public struct TxnRequest: Sendable, Hashable {
    public var compares: [Compare]
    public var success: [TxnOp]
    public var failure: [TxnOp]

    public init(compares: [Compare] = [], success: [TxnOp], failure: [TxnOp] = []) {
        self.compares = compares
        self.success = success
        self.failure = failure
    }
}

extension TxnRequest {
    /// Whether neither branch writes: such a transaction is a consistent multi-key read.
    public var isReadOnly: Bool {
        (success + failure).allSatisfy { op in
            if case .range = op { return true }
            return false
        }
    }
}

public struct TxnResult: Sendable, Hashable {
    /// Whether every compare held (and so `success` ran).
    public var succeeded: Bool
    /// The store's revision after the transaction.
    public var revision: Int64
    public var results: [TxnOpResult]

    public init(succeeded: Bool, revision: Int64, results: [TxnOpResult]) {
        self.succeeded = succeeded
        self.revision = revision
        self.results = results
    }
}
