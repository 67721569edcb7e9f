import Foundation

/// One version of a config key as the API reports it (without the content).
public struct ConfigVersionInfo: Codable, Sendable, Hashable {
    public enum Action: String, Codable, Sendable, Hashable {
        case put, delete
    }

    /// `NAMESPACE/PATH`.
    public var key: String
    /// Store revision at which this version was written; the `ETag` of the key.
    public var revision: Int64
    /// Version number of the key, counted from its first write and continuing across deletes.
    public var version: Int64
    public var action: Action
    public var format: ConfigFormat
    /// Content size in bytes.
    public var size: Int
    /// SHA-256 of the content, lowercase hex.
    public var sha256: String
    public var author: String
    public var comment: String
    public var time: Date
    /// True for a secret: its content is encrypted at rest, and `size` and `sha256` are the
    /// ciphertext's. Absent otherwise.
    public var secret: Bool?
    /// For a rollout's candidate listed in a key's history (not a main version): the rollout.
    public var rollout: String?

    public init(
        key: String, revision: Int64, version: Int64, action: Action, format: ConfigFormat,
        size: Int, sha256: String, author: String, comment: String, time: Date, secret: Bool? = nil, rollout: String? = nil
    ) {
        self.key = key
        self.revision = revision
        self.version = version
        self.action = action
        self.format = format
        self.size = size
        self.sha256 = sha256
        self.author = author
        self.comment = comment
        self.time = time
        self.secret = secret
        self.rollout = rollout
    }
}

/// A page of config listings.
public struct ConfigList: Codable, Sendable, Hashable {
    /// Store revision the listing was read at; pass it as `index` to long-poll for changes.
    public var revision: Int64
    public var items: [ConfigVersionInfo]

    public init(revision: Int64, items: [ConfigVersionInfo]) {
        self.revision = revision
        self.items = items
    }
}

/// The retained versions of one key, newest first.
public struct ConfigHistory: Codable, Sendable, Hashable {
    public var key: String
    public var items: [ConfigVersionInfo]

    public init(key: String, items: [ConfigVersionInfo]) {
        self.key = key
        self.items = items
    }
}

/// One change delivered by a watch (`GET /v1/watch`), one per Server-Sent Event.
public struct ConfigEvent: Codable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable, Hashable {
        case put, delete
    }

    public var type: Kind
    public var key: String
    public var revision: Int64
    /// For puts: the version, format, content and metadata written.
    public var version: Int64?
    public var format: ConfigFormat?
    public var content: String?
    public var author: String?
    public var comment: String?
    public var time: Date?
    /// True when the version written is a secret: its content is never in a watch event.
    public var secret: Bool?

    public init(
        type: Kind, key: String, revision: Int64, version: Int64? = nil, format: ConfigFormat? = nil,
        content: String? = nil, author: String? = nil, comment: String? = nil, time: Date? = nil, secret: Bool? = nil
    ) {
        self.type = type
        self.key = key
        self.revision = revision
        self.version = version
        self.format = format
        self.content = content
        self.author = author
        self.comment = comment
        self.time = time
        self.secret = secret
    }
}
