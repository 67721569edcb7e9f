import Foundation

/// A namespace: an environment or tenant that holds config keys.
public struct NamespaceInfo: Codable, Sendable, Hashable {
    public var name: String
    public var description: String
    public var createdBy: String
    public var createdAt: Date
    /// Store revision of the namespace record.
    public var revision: Int64
    /// Number of config keys in the namespace (present in listings and single reads).
    public var configCount: Int?

    public init(name: String, description: String, createdBy: String, createdAt: Date, revision: Int64, configCount: Int? = nil) {
        self.name = name
        self.description = description
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.revision = revision
        self.configCount = configCount
    }
}

/// Body of `POST /v1/namespaces`.
public struct CreateNamespaceRequest: Codable, Sendable, Hashable {
    public var name: String
    public var description: String?

    public init(name: String, description: String? = nil) {
        self.name = name
        self.description = description
    }
}

public struct NamespaceList: Codable, Sendable, Hashable {
    public var items: [NamespaceInfo]

    public init(items: [NamespaceInfo]) {
        self.items = items
    }
}
