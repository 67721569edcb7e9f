import CapstanCore
import CapstanStore
import CapstanTLS
import Foundation
import Logging

/// The installation's own secrets in the store, the join token agents enroll with and the CA's
/// private key, sealed under the server's secret key (`SecretKeyring`) on SQLite and etcd alike:
/// whoever reads the store's files, or etcd, sees neither. Replicas therefore share one key file.
public struct InstallationSecrets: Sendable {
    let store: any KeyValueStore
    let keyring: SecretKeyring?
    let logger: Logger

    public init(store: any KeyValueStore, keyring: SecretKeyring?, logger: Logger) {
        self.store = store
        self.keyring = keyring
        self.logger = logger
    }

    /// What `sealStored` rewrote, by name ("the join token", "the CA's private key").
    public struct Rewritten: Sendable, Hashable {
        /// Found in clear (written before they were sealed) and sealed in place.
        public var sealedFromClear: [String] = []
        /// Sealed under an older key the keyring still holds, and sealed again under the current one.
        public var resealed: [String] = []
        public var all: [String] { sealedFromClear + resealed }
    }

    /// Seals in place what an earlier version kept in clear, and re-seals under the current key
    /// what is sealed under an older one the keyring still holds (the store half of `rotate-key`).
    /// Without a key, what is sealed is left for the replicas that hold it, and a value in clear
    /// is refused rather than left so.
    @discardableResult
    public func sealStored() async throws -> Rewritten {
        guard keyring != nil else {
            if let kv = try await store.get(Self.joinTokenItem.storeKey), Self.joinTokenItem.isClear(kv.value) {
                _ = try requireKeyring(Self.joinTokenItem.what)
            }
            if let kv = try await store.get(Self.authorityItem.storeKey), Self.authorityItem.isClear(kv.value) {
                _ = try requireKeyring(Self.authorityItem.what)
            }
            return Rewritten()
        }
        var rewritten = Rewritten()
        func note(_ what: String, _ rewrite: Rewrite?) {
            switch rewrite {
            case .sealedFromClear?: rewritten.sealedFromClear.append(what)
            case .resealed?: rewritten.resealed.append(what)
            case nil: break
            }
        }
        note(Self.joinTokenItem.what, try await load(Self.joinTokenItem, create: nil)?.rewrite)
        note(Self.authorityItem.what, try await load(Self.authorityItem, create: nil)?.rewrite)
        if !rewritten.sealedFromClear.isEmpty { try await dropClearHistory() }
        return rewritten
    }

    /// After sealing what was in clear: the older revisions that still hold it are compacted away,
    /// and an SQLite file is rebuilt so that no free page keeps their bytes. Once per installation.
    func dropClearHistory() async throws {
        let status = try await store.status()
        do {
            try await store.compact(upTo: status.revision)
        } catch let error as StoreError where error.code == .compacted {
            // Compacted past it already.
        }
        if let sqlite = store as? SQLiteStore { try sqlite.vacuum() }
        logger.warning(
            """
            the store's history was compacted so that no older revision holds the secrets in clear; whoever could read the \
            store before may have the join token: consider giving a new one (--join-token)
            """)
    }

    /// The join token in effect: `given`, else the one kept in the store (created there on the
    /// first start, so that every replica and every restart uses the same).
    public func joinToken(given: String?) async throws -> String {
        if let given { return given }
        // `load` answers a value whenever it may create one.
        return try await load(Self.joinTokenItem, create: { NodeRegistry.randomJoinToken() })!.value
    }

    /// The installation's CA: created on the first start and kept in the store, so that every
    /// replica and restart signs with the same.
    public func authority() async throws -> CertificateAuthority {
        try await load(Self.authorityItem, create: { try CertificateAuthority.create() })!.value
    }

    // MARK: The two secrets

    enum Rewrite { case sealedFromClear, resealed }

    /// One secret at one store key: how it is sealed, and how it is read back, in clear too as
    /// versions before sealing kept it.
    struct Item<Value>: Sendable {
        let storeKey: String
        let what: String
        /// The value and the id of the key it is sealed under (nil: it is in clear).
        let open: @Sendable (Data, SecretKeyring) throws -> (value: Value, sealedUnder: String?)
        let seal: @Sendable (Value, SecretKeyring) throws -> Data
        /// Whether a stored value is in clear, told without a key.
        let isClear: @Sendable (Data) -> Bool
    }

    static let joinTokenItem = Item<String>(
        storeKey: StoreLayout.joinToken, what: "the join token",
        open: { data, keyring in
            // Kept bare before it was sealed; a token never starts with "{".
            guard data.first == UInt8(ascii: "{") else { return (String(decoding: data, as: UTF8.self), nil) }
            let sealed = try RecordCoding.decoder.decode(SealedValue.self, from: data)
            return (String(decoding: try keyring.open(sealed, at: StoreLayout.joinToken, what: "the join token"), as: UTF8.self), sealed.key)
        },
        seal: { token, keyring in
            try RecordCoding.encoder.encode(try keyring.seal(Data(token.utf8), at: StoreLayout.joinToken))
        },
        isClear: { $0.first != UInt8(ascii: "{") })

    /// The CA as stored: the certificate in clear, the key sealed (`key` held it in clear before).
    struct StoredAuthority: Codable {
        var certificate: String
        var key: String?
        var sealedKey: SealedValue?
    }

    static let authorityItem = Item<CertificateAuthority>(
        storeKey: StoreLayout.tlsAuthority, what: "the CA's private key",
        open: { data, keyring in
            let stored = try RecordCoding.decoder.decode(StoredAuthority.self, from: data)
            if let sealed = stored.sealedKey {
                let key = try keyring.open(sealed, at: StoreLayout.tlsAuthority, what: "the CA's private key")
                return (try CertificateAuthority(certificatePEM: stored.certificate, keyPEM: String(decoding: key, as: UTF8.self)), sealed.key)
            }
            guard let key = stored.key else { throw CapstanError(.internal, "the stored certificate authority holds no key") }
            return (try CertificateAuthority(certificatePEM: stored.certificate, keyPEM: key), nil)
        },
        seal: { authority, keyring in
            try RecordCoding.encoder.encode(
                StoredAuthority(
                    certificate: authority.certificatePEM, sealedKey: try keyring.seal(Data(authority.keyPEM.utf8), at: StoreLayout.tlsAuthority)))
        },
        isClear: { (try? RecordCoding.decoder.decode(StoredAuthority.self, from: $0))?.key != nil })

    /// Reads `item`, sealing it in place when it is not sealed under the current key; when it is
    /// absent, creates it with `create` (nil: leaves it absent and answers nil). Another replica
    /// writing it meanwhile makes it read again.
    func load<Value>(_ item: Item<Value>, create: (() throws -> Value)?) async throws -> (value: Value, rewrite: Rewrite?)? {
        for _ in 0..<8 {
            if let kv = try await store.get(item.storeKey) {
                let keyring = try requireKeyring(item.what)
                let (value, sealedUnder) = try item.open(kv.value, keyring)
                if sealedUnder == keyring.currentID { return (value, nil) }
                let result = try await store.txn(
                    TxnRequest(
                        compares: [Compare(key: item.storeKey, .modRevision(kv.modRevision))],
                        success: [.put(key: item.storeKey, value: try item.seal(value, keyring))]))
                guard result.succeeded else { continue }
                // Said louder when it was in clear: whoever could read the store may have it.
                let metadata: Logger.Metadata = ["secret.key": "\(keyring.currentID)"]
                if sealedUnder == nil {
                    logger.warning("sealed \(item.what), which the store held in clear, under the secret key", metadata: metadata)
                } else {
                    logger.notice("re-sealed \(item.what) under the current secret key", metadata: metadata)
                }
                return (value, sealedUnder == nil ? .sealedFromClear : .resealed)
            }
            guard let create else { return nil }
            let keyring = try requireKeyring(item.what)
            let value = try create()
            let result = try await store.txn(
                TxnRequest(compares: [.absent(item.storeKey)], success: [.put(key: item.storeKey, value: try item.seal(value, keyring))]))
            if result.succeeded { return (value, nil) }
        }
        throw CapstanError(.conflict, "\(item.what) in the store kept changing while it was read")
    }

    private func requireKeyring(_ what: String) throws -> SecretKeyring {
        guard let keyring else {
            throw CapstanError(
                .invalidArgument,
                "\(what) is kept in the store sealed under the secret key, and this server has none: an etcd store has no default "
                    + "key file, so give every replica the same one (--secret-key-file or CAPSTAN_SECRET_KEY)")
        }
        return keyring
    }
}
