import CapstanCore
import Crypto
import Foundation

/// A small secret of the server's own (the join token, the CA's private key) as the store keeps
/// it: AES-256-GCM under a secret key, bound to the store key it is kept at, so that it opens
/// nowhere else.
struct SealedValue: Codable, Sendable, Hashable {
    /// The id of the secret key it is sealed under.
    var key: String
    /// Nonce, ciphertext and tag, base64.
    var sealed: String
}

extension SecretKeyring {
    /// Seals `plaintext`, kept at `storeKey`, under the current key.
    func seal(_ plaintext: Data, at storeKey: String) throws -> SealedValue {
        let box = try AES.GCM.seal(plaintext, using: keys[0].key, authenticating: Self.associatedData(storeKey))
        guard let combined = box.combined else { throw CapstanError(.internal, "AES-GCM gave no combined form") }
        return SealedValue(key: keys[0].id, sealed: combined.base64EncodedString())
    }

    /// Opens what `seal` sealed at `storeKey`.
    /// - Parameter what: the secret as an error names it ("the join token").
    /// - Throws: `unavailable` when this keyring does not hold the key it is sealed under (a
    ///   replica given another key file), `internal` when it does not open (altered or moved).
    func open(_ value: SealedValue, at storeKey: String, what: String) throws -> Data {
        guard let key = keys.first(where: { $0.id == value.key }) else {
            throw CapstanError(
                .unavailable,
                "\(what) in the store is sealed under secret key \(value.key), which this server does not hold (it has "
                    + "\(ids.joined(separator: ", "))): give every replica the same secret key file (--secret-key-file or CAPSTAN_SECRET_KEY)")
        }
        do {
            guard let combined = Data(base64Encoded: value.sealed) else { throw CapstanError(.internal, "not base64") }
            return try AES.GCM.open(AES.GCM.SealedBox(combined: combined), using: key.key, authenticating: Self.associatedData(storeKey))
        } catch {
            throw CapstanError(.internal, "\(what) in the store does not open under secret key \(key.id): it was altered")
        }
    }

    private static func associatedData(_ storeKey: String) -> Data {
        Data("capstan-sealed/1\n\(storeKey)".utf8)
    }
}
