import CapstanCore
import CapstanStore
import Crypto
import Foundation
import Logging
import Synchronization

/// Who an API request acts as: a token and the role it holds.
public struct Caller: Sendable {
    public var tokenID: String
    public var description: String
    public var role: Role
    /// When the token stops working; nil for never.
    public var expiresAt: Date?

    /// How history and the audit log name it.
    public var name: String { description.isEmpty ? "token \(tokenID)" : "\(description) (token \(tokenID))" }
}

/// API tokens and roles: bootstrap, authentication, and their management.
///
/// Tokens are `cap_ID_SECRET`; the store keeps the SHA-256 of the secret only. Records are cached
/// in memory and kept fresh by a watch (`run()`), so a revocation on any replica takes effect on
/// every replica as soon as its watch delivers it; until the cache is loaded, reads go to the store.
public final class AccessControl: Sendable {
    struct TokenRecord: Codable, Sendable {
        var id: String
        var role: String
        var description: String
        var createdAt: Date
        var expiresAt: Date?
        var createdBy: String
        var secretHash: String

        var info: TokenInfo {
            TokenInfo(id: id, role: role, description: description, createdAt: createdAt, expiresAt: expiresAt, createdBy: createdBy)
        }
    }

    struct RoleRecord: Codable, Sendable {
        var name: String
        var description: String
        var rules: [String]
    }

    private struct Cache {
        var loaded = false
        var tokens: [String: TokenRecord] = [:]
        var roles: [String: Role] = [:]
        /// The store revision the cache reflects: a snapshot older than it is not applied.
        var revision: Int64 = 0
    }

    /// However the watch fares, the cache is read afresh this often (30 s by default): a watch
    /// that stalls without failing cannot keep a revoked token alive for longer.
    let refreshInterval: Duration

    /// The id of the token bootstrap creates.
    public static let rootID = "root"

    let store: any KeyValueStore
    let logger: Logger
    private let cache = Mutex(Cache())
    /// Bearer tokens that checked out lately, by token id, each with the secret hash its record
    /// had then: the next request with the same token skips the SHA-256 (compared in constant
    /// time, as the hash is). Held in memory only, as the request that carried them was; a token
    /// whose record changed or went is checked afresh (and refused, and forgotten). At most
    /// `verifiedLimit` are held; past it the memo starts over.
    private let verified = Mutex<[String: (token: String, secretHash: String)]>([:])
    static let verifiedLimit = 4096
    /// Requests held open on a token, told when it stops working.
    let watchers = TokenWatchers()

    public init(store: any KeyValueStore, logger: Logger = Logger(label: "capstan.access"), refreshInterval: Duration = .seconds(30)) {
        self.store = store
        self.logger = logger
        self.refreshInterval = refreshInterval
    }

    // MARK: Bootstrap

    /// Creates the root token on the first start of an installation: `given` if set, else a fresh
    /// one. Answers the token when this call created it, nil when the installation already has one
    /// (it is shown once and kept only hashed).
    public static func bootstrap(store: any KeyValueStore, given: String? = nil) async throws -> String? {
        if let given {
            guard given.count >= 16, given.count <= 256, given.allSatisfy({ $0.isASCII && !$0.isWhitespace && !$0.isNewline }) else {
                throw CapstanError(.invalidArgument, "the root token must be 16 to 256 characters without spaces")
            }
            // A given token shaped like cap_ID_SECRET would be checked by its SECRET alone.
            let (id, secret) = parse(given)
            guard given == secret || (id == rootID && secret.count >= 16) else {
                throw CapstanError(.invalidArgument, "a root token that starts with cap_ must be cap_root_ and a secret of at least 16 characters")
            }
        }
        let token = given ?? "cap_\(rootID)_\(NodeRegistry.randomSecret())"
        let secret = Self.parse(token).secret
        let record = TokenRecord(
            id: rootID, role: Role.admin.name, description: "root", createdAt: Date(), expiresAt: nil, createdBy: "bootstrap",
            secretHash: Self.hash(secret))
        let marker = StoreLayout.accessBootstrapped
        let result = try await store.txn(
            TxnRequest(
                compares: [.absent(marker)],
                success: [
                    .put(key: marker, value: Data(ISO8601DateFormatter().string(from: Date()).utf8)),
                    .put(key: StoreLayout.token(rootID), value: try RecordCoding.encoder.encode(record)),
                ]))
        return result.succeeded ? token : nil
    }

    // MARK: Authentication

    /// The caller a bearer token stands for.
    /// - Throws: `unauthorized` for an unknown, revoked or expired token.
    public func authenticate(_ token: String) async throws -> Caller {
        let (id, secret) = Self.parse(token)
        let record = try await tokenRecord(id)
        if let record, let known = verified.withLock({ $0[id] }), known.secretHash == record.secretHash,
            NodeRegistry.constantTimeEqual(known.token, token)
        {
            return try await caller(record)
        }
        guard let record, NodeRegistry.constantTimeEqual(Self.hash(secret), record.secretHash) else {
            verified.withLock { _ = $0.removeValue(forKey: id) }
            throw CapstanError(.unauthorized, "the token is unknown or revoked")
        }
        verified.withLock { verified in
            if verified.count >= Self.verifiedLimit, verified[id] == nil { verified.removeAll(keepingCapacity: true) }
            verified[id] = (token, record.secretHash)
        }
        return try await caller(record)
    }

    /// The caller of token `id` for a console session, which holds the token's id, not its
    /// secret. - Throws: `unauthorized` when the token was revoked or expired meanwhile.
    func caller(tokenID id: String) async throws -> Caller {
        guard let record = try await tokenRecord(id) else { throw CapstanError(.unauthorized, "token \(id) was revoked") }
        return try await caller(record)
    }

    private func caller(_ record: TokenRecord) async throws -> Caller {
        if let expiresAt = record.expiresAt, expiresAt <= Date() {
            throw CapstanError(.unauthorized, "token \(record.id) expired at \(ISO8601DateFormatter().string(from: expiresAt))")
        }
        guard let role = try await roleIfAny(record.role) else {
            throw CapstanError(.unauthorized, "token \(record.id) holds role \(record.role.quoted), which no longer exists")
        }
        return Caller(tokenID: record.id, description: record.description, role: role, expiresAt: record.expiresAt)
    }

    /// Splits `cap_ID_SECRET`; any other text is taken as a root token given at bootstrap.
    static func parse(_ token: String) -> (id: String, secret: String) {
        let parts = token.split(separator: "_", maxSplits: 2, omittingEmptySubsequences: false)
        if parts.count == 3, parts[0] == "cap", !parts[1].isEmpty, !parts[2].isEmpty {
            return (String(parts[1]), String(parts[2]))
        }
        return (rootID, token)
    }

    static func hash(_ secret: String) -> String {
        ConfigRecord.hex(SHA256.hash(data: Data(secret.utf8)))
    }

    // MARK: Tokens

    /// Creates a token of `spec.role`; the caller must hold everything that role grants.
    public func createToken(_ spec: TokenSpec, by caller: Caller) async throws -> CreatedToken {
        let role = try await role(spec.role)
        guard caller.role.covers(role) else {
            throw CapstanError(.forbidden, "role \(role.name.quoted) grants more than your own role \(caller.role.name.quoted)")
        }
        try Self.validate(description: spec.description)
        if let ttl = spec.ttlSeconds, ttl < 1 || ttl > 10 * 365 * 86_400 {
            throw CapstanError(.invalidArgument, "the time to live must be between 1 second and 10 years, got \(ttl) s")
        }
        let id = ConfigRecord.hex((0..<8).map { _ in UInt8.random(in: 0...255) })
        let secret = NodeRegistry.randomSecret()
        let now = Date()
        // A token outlives neither its own time to live nor its creator's.
        let asked = spec.ttlSeconds.map { now.addingTimeInterval(TimeInterval($0)) }
        let expiresAt = [asked, caller.expiresAt].compactMap { $0 }.min()
        let record = TokenRecord(
            id: id, role: role.name, description: spec.description, createdAt: now, expiresAt: expiresAt, createdBy: caller.tokenID,
            secretHash: Self.hash(secret))
        let result = try await store.txn(
            TxnRequest(
                compares: [.absent(StoreLayout.token(id))],
                success: [.put(key: StoreLayout.token(id), value: try RecordCoding.encoder.encode(record))]))
        guard result.succeeded else { throw CapstanError(.conflict, "token id \(id) is taken; try again") }
        cache.withLock { if $0.loaded { $0.tokens[id] = record } }
        return CreatedToken(token: "cap_\(id)_\(secret)", info: record.info)
    }

    public func tokens() async throws -> [TokenInfo] {
        let range = try await store.range(RangeRequest(.prefix(StoreLayout.tokens)))
        return range.kvs.compactMap { try? RecordCoding.decoder.decode(TokenRecord.self, from: $0.value).info }
            .sorted { $0.createdAt < $1.createdAt }
    }

    /// Revokes a token at once: on this replica now, on the others when their watch delivers it.
    /// The caller must hold everything the token's role grants: nobody revokes a stronger token.
    public func revoke(_ id: String, by caller: Caller) async throws {
        guard Self.isTokenID(id) else {
            throw CapstanError(.invalidArgument, "token id \(id.quoted) is not a token id (see capstan token ls)")
        }
        // Revoking the token in hand would leave its holder (root above all) locked out.
        guard id != caller.tokenID else {
            throw CapstanError(.conflict, "a token does not revoke itself: revoke token \(id) with another token whose role covers it")
        }
        if let record = try await store.get(StoreLayout.token(id)).flatMap({ try? RecordCoding.decoder.decode(TokenRecord.self, from: $0.value) }),
            let role = try await roleIfAny(record.role), !caller.role.covers(role)
        {
            throw CapstanError(.forbidden, "token \(id) holds role \(role.name.quoted), which grants more than your own role \(caller.role.name.quoted)")
        }
        let (deleted, _) = try await store.delete(.key(StoreLayout.token(id)))
        guard deleted > 0 else { throw CapstanError(.notFound, "no token \(id)") }
        cache.withLock { _ = $0.tokens.removeValue(forKey: id) }
        cacheChanged()
    }

    /// Ids are letters and digits: they are keys in the store.
    static func isTokenID(_ id: String) -> Bool {
        id.count <= 64 && id.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }
    }

    static func validate(description: String) throws {
        guard description.count <= 256, !description.contains(where: \.isNewline) else {
            throw CapstanError(.invalidArgument, "the description must be one line of at most 256 characters")
        }
    }

    private func tokenRecord(_ id: String) async throws -> TokenRecord? {
        let (loaded, cached) = cache.withLock { ($0.loaded, $0.tokens[id]) }
        if loaded { return cached }
        guard Self.isTokenID(id) else { return nil }
        return try await store.get(StoreLayout.token(id)).flatMap { try? RecordCoding.decoder.decode(TokenRecord.self, from: $0.value) }
    }

    // MARK: Roles

    /// Creates or replaces a role; the caller must hold everything it grants. Built-in roles are fixed.
    public func putRole(_ name: String, _ spec: RoleSpec, by caller: Caller) async throws -> Role {
        try Role.validate(name: name)
        guard !Role.builtIns.contains(where: { $0.name == name }) else {
            throw CapstanError(.conflict, "role \(name.quoted) is built in and cannot be changed")
        }
        guard !spec.rules.isEmpty, spec.rules.count <= 100 else {
            throw CapstanError(.invalidArgument, "a role has 1 to 100 rules, got \(spec.rules.count)")
        }
        try Self.validate(description: spec.description)
        let role = Role(name: name, description: spec.description, rules: try spec.rules.map { try AccessRule(parsing: $0) })
        guard caller.role.covers(role) else {
            throw CapstanError(.forbidden, "role \(name.quoted) would grant more than your own role \(caller.role.name.quoted)")
        }
        let record = RoleRecord(name: name, description: spec.description, rules: role.rules.map(\.description))
        _ = try await store.put(StoreLayout.role(name), try RecordCoding.encoder.encode(record))
        cache.withLock { if $0.loaded { $0.roles[name] = role } }
        return role
    }

    public func roles() async throws -> [Role] {
        let range = try await store.range(RangeRequest(.prefix(StoreLayout.roles)))
        return Role.builtIns + range.kvs.compactMap { Self.decodeRole($0.value) }.sorted { $0.name < $1.name }
    }

    public func role(_ name: String) async throws -> Role {
        try Role.validate(name: name)
        guard let role = try await roleIfAny(name) else {
            throw CapstanError(.notFound, "no role \(name.quoted) (see capstan role ls)")
        }
        return role
    }

    /// Removes a role no token holds.
    public func removeRole(_ name: String) async throws {
        try Role.validate(name: name)
        guard !Role.builtIns.contains(where: { $0.name == name }) else {
            throw CapstanError(.conflict, "role \(name.quoted) is built in and cannot be removed")
        }
        let holders = try await tokens().filter { $0.role == name }.map(\.id)
        guard holders.isEmpty else {
            throw CapstanError(.conflict, "role \(name.quoted) is held by tokens \(holders.joined(separator: ", ")); revoke them first")
        }
        let (deleted, _) = try await store.delete(.key(StoreLayout.role(name)))
        guard deleted > 0 else { throw CapstanError(.notFound, "no role \(name.quoted)") }
        cache.withLock { _ = $0.roles.removeValue(forKey: name) }
        cacheChanged()
    }

    private func roleIfAny(_ name: String) async throws -> Role? {
        if let builtIn = Role.builtIns.first(where: { $0.name == name }) { return builtIn }
        let (loaded, cached) = cache.withLock { ($0.loaded, $0.roles[name]) }
        if loaded { return cached }
        return try await store.get(StoreLayout.role(name)).flatMap { Self.decodeRole($0.value) }
    }

    static func decodeRole(_ data: Data) -> Role? {
        guard let record = try? RecordCoding.decoder.decode(RoleRecord.self, from: data),
            let rules = try? record.rules.map({ try AccessRule(parsing: $0) })
        else { return nil }
        return Role(name: record.name, description: record.description, rules: rules)
    }

    // MARK: Cache

    /// Keeps the in-memory copy of tokens and roles in step with the store until cancelled.
    public func run() async throws {
        // Two children of one group: cancelling the run cancels both.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.refreshPeriodically() }
            group.addTask { try await self.follow() }
            _ = try await group.next()
            group.cancelAll()
        }
    }

    /// Reads the cache afresh every `refreshInterval` until cancelled.
    private func refreshPeriodically() async throws {
        while !Task.isCancelled {
            try await Task.sleep(for: refreshInterval)
            do { try await refresh() } catch is CancellationError { return } catch {
                logger.warning("tokens and roles were not read afresh", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Loads the cache, then follows the store's changes until cancelled.
    private func follow() async throws {
        while !Task.isCancelled {
            do {
                let range = try await refresh()
                for try await batch in store.watch(.prefix(StoreLayout.access), fromRevision: range + 1) {
                    cache.withLock { cache in
                        for event in batch {
                            Self.apply(event.kv, deleted: event.kind == .delete, to: &cache)
                            cache.revision = max(cache.revision, event.revision)
                        }
                    }
                    cacheChanged()
                }
            } catch is CancellationError {
                return
            } catch {
                cache.withLock { $0.loaded = false }
                logger.warning("reloading tokens and roles", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Reads every token and role and replaces the cache with them, unless the watch already
    /// brought the cache past that read. Answers the revision read at.
    @discardableResult
    func refresh() async throws -> Int64 {
        let range = try await store.range(RangeRequest(.prefix(StoreLayout.access)))
        cache.withLock { cache in
            guard range.revision >= cache.revision else { return }
            var fresh = Cache(loaded: true)
            for kv in range.kvs { Self.apply(kv, deleted: false, to: &fresh) }
            fresh.revision = range.revision
            cache = fresh
        }
        cacheChanged()
        return range.revision
    }

    /// Whether the caller still stands as it was authenticated, as far as the cache tells: its
    /// token exists and still holds the same role, and that role's rules are unchanged. Any change
    /// to the role ends the caller's held requests; the client authorizes afresh by reconnecting.
    /// Expiry is the caller's to check. True while the cache is not loaded (nothing is known).
    func stands(_ caller: Caller) -> Bool {
        cache.withLock { cache in
            guard cache.loaded else { return true }
            guard let record = cache.tokens[caller.tokenID], record.role == caller.role.name else { return false }
            let role = Role.builtIns.first { $0.name == record.role } ?? cache.roles[record.role]
            return role == caller.role
        }
    }

    /// Ends the requests held open by callers that no longer stand.
    private func cacheChanged() {
        guard !watchers.isEmpty else { return }
        watchers.notify { stands($0) }
    }

    private static func apply(_ kv: KeyValue, deleted: Bool, to cache: inout Cache) {
        if kv.key.hasPrefix(StoreLayout.tokens) {
            let id = String(kv.key.dropFirst(StoreLayout.tokens.count))
            cache.tokens[id] = deleted ? nil : try? RecordCoding.decoder.decode(TokenRecord.self, from: kv.value)
        } else if kv.key.hasPrefix(StoreLayout.roles) {
            let name = String(kv.key.dropFirst(StoreLayout.roles.count))
            cache.roles[name] = deleted ? nil : decodeRole(kv.value)
        }
    }
}
