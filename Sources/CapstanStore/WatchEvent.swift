/// A change to one key, as delivered by a watch.
public struct WatchEvent: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case put, delete
    }

    public var kind: Kind
    /// For a put, the key as written; for a delete, the key with an empty value, version 0 and
    /// `modRevision` set to the revision of the deletion.
    public var kv: KeyValue

    public var revision: Int64 { kv.modRevision }

    public init(kind: Kind, kv: KeyValue) {
        self.kind = kind
        self.kv = kv
    }
}
