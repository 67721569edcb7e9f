import CapstanCore
import CapstanStore
import Crypto
import Foundation

/// Secrets: content encrypted at rest with AES-256-GCM under a data key of its own per version;
/// the data key is stored wrapped under the server's secret key (`SecretKeyring`), so that a key
/// rotation rewraps data keys and leaves the versions, their revisions and hashes as they are.
extension ConfigService {
    /// A secret version's ciphertext, its data key's id and the store write of the wrapped data key.
    struct Sealed {
        var ciphertext: Data
        var dataKeyID: String
        var dataKeyWrite: TxnOp
    }

    func seal(_ plaintext: Data, key: ConfigKey) throws -> Sealed {
        guard let keyring = secrets else {
            throw CapstanError(
                .invalidArgument,
                "this server has no secret key: give it --secret-key-file (created in --data-dir by default) or CAPSTAN_SECRET_KEY")
        }
        let dataKey = SymmetricKey(size: .bits256)
        let id = ConfigRecord.hex(SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) })
        let sealed = try AES.GCM.seal(plaintext, using: dataKey, authenticating: Self.associatedData(key: key, dataKeyID: id))
        guard let combined = sealed.combined else { throw CapstanError(.internal, "AES-GCM gave no combined form") }
        let wrapped = try RecordCoding.encoder.encode(try keyring.wrap(dataKey, id: id))
        return Sealed(ciphertext: combined, dataKeyID: id, dataKeyWrite: .put(key: StoreLayout.secretKey(id), value: wrapped))
    }

    /// The plaintext of `entry`: its content as it is for plain content, decrypted for a secret.
    public func reveal(_ entry: Entry, key: ConfigKey) async throws -> Data {
        guard let id = entry.dataKeyID else { return entry.content }
        return try await Self.reveal(entry.content, dataKeyID: id, key: key, revision: entry.info.revision, store: store, keyring: secrets)
    }

    /// Decrypts a secret version's `ciphertext`.
    static func reveal(
        _ ciphertext: Data, dataKeyID id: String, key: ConfigKey, revision: Int64, store: any KeyValueStore, keyring: SecretKeyring?
    ) async throws -> Data {
        guard let keyring else {
            throw CapstanError(.unavailable, "config \(key) is a secret and this server has no secret key to read it")
        }
        guard let kv = try await store.get(StoreLayout.secretKey(id)) else {
            throw CapstanError(.internal, "config \(key)'s data key \(id) is missing")
        }
        let dataKey = try keyring.unwrap(try RecordCoding.decoder.decode(SecretKeyring.WrappedKey.self, from: kv.value), id: id)
        do {
            let box = try AES.GCM.SealedBox(combined: ciphertext)
            return try AES.GCM.open(box, using: dataKey, authenticating: Self.associatedData(key: key, dataKeyID: id))
        } catch {
            throw CapstanError(.internal, "config \(key) revision \(revision) does not decrypt: it was altered or moved")
        }
    }

    /// Binds a ciphertext to its key and data key: moved to another key, it does not open.
    static func associatedData(key: ConfigKey, dataKeyID: String) -> Data {
        Data("capstan-secret/1\n\(key)\n\(dataKeyID)".utf8)
    }

    /// Rewraps every data key under the keyring's current key: the rotation's store half.
    /// Answers how many were rewrapped. Versions themselves are not touched.
    public static func rewrapSecretKeys(store: any KeyValueStore, keyring: SecretKeyring) async throws -> Int {
        var rewrapped = 0
        var start = StoreLayout.secretKeys
        let end = String(StoreLayout.secretKeys.dropLast()) + "0"
        while true {
            let page = try await store.range(RangeRequest(.interval(from: start, to: end), limit: 500))
            for kv in page.kvs {
                let id = String(kv.key.dropFirst(StoreLayout.secretKeys.count))
                let wrapped = try RecordCoding.decoder.decode(SecretKeyring.WrappedKey.self, from: kv.value)
                guard wrapped.key != keyring.currentID else { continue }
                let dataKey = try keyring.unwrap(wrapped, id: id)
                let value = try RecordCoding.encoder.encode(try keyring.wrap(dataKey, id: id))
                let result = try await store.txn(
                    TxnRequest(compares: [Compare(key: kv.key, .modRevision(kv.modRevision))], success: [.put(key: kv.key, value: value)]))
                guard result.succeeded else { throw CapstanError(.conflict, "data key \(id) changed during the rotation: stop the servers first") }
                rewrapped += 1
            }
            guard page.more, let last = page.kvs.last else { return rewrapped }
            start = last.key + "\u{0}"
        }
    }
}
