import CapstanCore
import CapstanStore
import Crypto
import Foundation
import Synchronization

/// Console sessions: a login exchanges an API token for a session cookie that stands for the
/// token (its id, never its secret) until the session expires, the user logs out, or the token
/// stops working (checked on every request). Sessions live in the store, so any replica serves
/// them; the store keeps the SHA-256 of each cookie, under a lease that removes it when it expires.
public final class ConsoleSessions: Sendable {
    struct Record: Codable, Sendable {
        var tokenID: String
        /// The CSRF token every form of the session carries.
        var csrf: String
        var expiresAt: Date
    }

    /// A session as a request presents it.
    struct Session: Sendable {
        var record: Record
        var caller: Caller
    }

    let store: any KeyValueStore
    /// One-time login codes (`--dev`), by their SHA-256: the token id each logs in as, and until
    /// when. Kept in memory: a code is for the server that printed it, and writing it to the store
    /// would move the revisions a fresh dev server shows.
    private let codes = Mutex<[String: (tokenID: String, until: ContinuousClock.Instant)]>([:])
    /// How long a session lasts at most (never past its token's expiry).
    static let lifetime: Duration = .seconds(12 * 3600)
    /// How long a one-time login code may wait to be used.
    static let codeLifetime: Duration = .seconds(3600)

    public init(store: any KeyValueStore) {
        self.store = store
    }

    /// A new session of `caller`: the cookie's value and the record.
    func start(caller: Caller) async throws -> (cookie: String, record: Record) {
        var expiresAt = Date().addingTimeInterval(Double(Self.lifetime.components.seconds))
        if let tokenExpiry = caller.expiresAt { expiresAt = min(expiresAt, tokenExpiry) }
        let record = Record(tokenID: caller.tokenID, csrf: NodeRegistry.randomSecret(), expiresAt: expiresAt)
        let cookie = NodeRegistry.randomSecret()
        let ttl = max(1, Int64(expiresAt.timeIntervalSinceNow.rounded(.up)))
        let lease = try await store.grantLease(ttl: ttl)
        try await store.put(StoreLayout.session(Self.hash(cookie)), try RecordCoding.encoder.encode(record), lease: lease.id)
        return (cookie, record)
    }

    /// The live session a cookie stands for; nil when there is none or it expired.
    func record(cookie: String) async throws -> Record? {
        guard !cookie.isEmpty, cookie.utf8.count <= 128, let kv = try await store.get(StoreLayout.session(Self.hash(cookie))),
            let record = try? RecordCoding.decoder.decode(Record.self, from: kv.value), record.expiresAt > Date()
        else { return nil }
        return record
    }

    /// Ends the session of `cookie`.
    func end(cookie: String) async throws {
        _ = try await store.delete(.key(StoreLayout.session(Self.hash(cookie))))
    }

    /// A code that logs in as `caller` once, within an hour (the URL `--dev` prints holds it,
    /// never the token).
    public func loginCode(for caller: Caller) -> String {
        let code = NodeRegistry.randomSecret()
        let until = ContinuousClock.now + Self.codeLifetime
        codes.withLock { codes in
            codes = codes.filter { $0.value.until > .now }
            codes[Self.hash(code)] = (caller.tokenID, until)
        }
        return code
    }

    /// Spends a one-time login code: the token id it logs in as, or nil when it is unknown,
    /// used or expired.
    func redeem(code: String) -> String? {
        codes.withLock { codes in
            guard let entry = codes.removeValue(forKey: Self.hash(code)), entry.until > .now else { return nil }
            return entry.tokenID
        }
    }

    static func hash(_ text: String) -> String {
        ConfigRecord.hex(SHA256.hash(data: Data(text.utf8)))
    }
}
