import Foundation

/// A key and its value as the store holds it at one revision, with etcd v3's per-key bookkeeping.
public struct KeyValue: Sendable, Hashable {
    public var key: String
    public var value: Data
    /// Revision of the write that created the key (since its last deletion).
    public var createRevision: Int64
    /// Revision of the last write to the key.
    public var modRevision: Int64
    /// Number of writes since the key was created; 1 after the first put.
    public var version: Int64
    /// Lease the key is attached to, if any; the key vanishes when the lease expires.
    public var lease: LeaseID?

    public init(
        key: String,
        value: Data,
        createRevision: Int64,
        modRevision: Int64,
        version: Int64,
        lease: LeaseID? = nil
    ) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
        self.lease = lease
    }
}

/// Identifier of a lease; etcd's lease IDs are 64-bit integers too.
public typealias LeaseID = Int64
