import Foundation

/// `POST /v1/tokens`: a new API token.
public struct TokenSpec: Codable, Sendable, Hashable {
    public var role: String
    public var description: String
    /// nil for a token that does not expire.
    public var ttlSeconds: Int64?

    public init(role: String, description: String = "", ttlSeconds: Int64? = nil) {
        self.role = role
        self.description = description
        self.ttlSeconds = ttlSeconds
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        role = try container.decode(String.self, forKey: .role)
        description = try container.decodeIfPresent(String.self, forKey: .description) ?? ""
        ttlSeconds = try container.decodeIfPresent(Int64.self, forKey: .ttlSeconds)
    }
}

/// An API token as listings show it: never its secret.
public struct TokenInfo: Codable, Sendable, Hashable {
    public var id: String
    public var role: String
    public var description: String
    public var createdAt: Date
    public var expiresAt: Date?
    /// Who created it: a token id, or `bootstrap`.
    public var createdBy: String

    public init(id: String, role: String, description: String, createdAt: Date, expiresAt: Date?, createdBy: String) {
        self.id = id
        self.role = role
        self.description = description
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.createdBy = createdBy
    }
}

/// The answer to creating a token: the only time its secret is shown.
public struct CreatedToken: Codable, Sendable, Hashable {
    public var token: String
    public var info: TokenInfo

    public init(token: String, info: TokenInfo) {
        self.token = token
        self.info = info
    }
}

/// `PUT /v1/roles/NAME`.
public struct RoleSpec: Codable, Sendable, Hashable {
    public var description: String
    public var rules: [String]

    public init(description: String = "", rules: [String]) {
        self.description = description
        self.rules = rules
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        description = try container.decodeIfPresent(String.self, forKey: .description) ?? ""
        rules = try container.decode([String].self, forKey: .rules)
    }
}

/// Who a request acts as, as `GET /v1/whoami` answers.
public struct CallerInfo: Codable, Sendable, Hashable {
    public var tokenID: String
    public var description: String
    public var role: Role

    public init(tokenID: String, description: String, role: Role) {
        self.tokenID = tokenID
        self.description = description
        self.role = role
    }
}
