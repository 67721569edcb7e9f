import CapstanCore
import CapstanStore
import CapstanTLS
import CapstanTesting
import Foundation
import Logging
import Testing

@testable import CapstanServer

/// The join token and the CA's private key in the store: sealed under the secret key on every
/// engine, shared by replicas with the same key, refused with a clear line without it, sealed in
/// place when an earlier version left them in clear, and re-sealed by a key rotation.
@Suite("Installation secrets at rest", .timeLimit(.minutes(2)))
struct InstallationSecretsTests {
    static let logger = Logger(label: "capstan.test")

    static func secrets(_ store: any KeyValueStore, _ keyring: SecretKeyring?) -> InstallationSecrets {
        InstallationSecrets(store: store, keyring: keyring, logger: logger)
    }

    /// Expects no stored value (as the engine keeps it: etcd's values, SQLite's rows) to hold
    /// `token` or a PEM private key.
    static func expectNothingInClear(_ store: any KeyValueStore, token: String) async throws {
        let values = try await store.range(RangeRequest(.prefix(StoreLayout.root))).kvs
        #expect(values.contains { $0.key == StoreLayout.joinToken })
        for kv in values {
            #expect(kv.value.range(of: Data(token.utf8)) == nil, "\(kv.key) holds the join token in clear")
            #expect(kv.value.range(of: Data("PRIVATE KEY".utf8)) == nil, "\(kv.key) holds a private key in clear")
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func sealedSharedByReplicasWithTheKeyAndRefusedWithoutIt(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let keyring = SecretKeyring.generate()
            let first = Self.secrets(store, keyring)
            let token = try await first.joinToken(given: nil)
            let authority = try await first.authority()
            try await Self.expectNothingInClear(store, token: token)

            // Another replica with the same key file reads the same token and CA.
            let replica = Self.secrets(store, keyring)
            #expect(try await replica.joinToken(given: nil) == token)
            #expect(try await replica.authority().keyPEM == authority.keyPEM)
            #expect(try await replica.sealStored() == .init())

            // A replica given another key says which key it lacks, and what to do.
            let stranger = Self.secrets(store, .generate())
            let wrongKey = await #expect(throws: CapstanError.self) { try await stranger.joinToken(given: nil) }
            #expect(wrongKey?.message.contains("the join token in the store is sealed under secret key \(keyring.currentID), which this server does not hold") == true, "\(String(describing: wrongKey))")
            #expect(wrongKey?.message.contains("give every replica the same secret key file") == true)
            let wrongCA = await #expect(throws: CapstanError.self) { try await stranger.authority() }
            #expect(wrongCA?.message.contains("the CA's private key in the store is sealed under secret key") == true, "\(String(describing: wrongCA))")

            // No key at all (etcd has no default file): refused, unless nothing needs sealing.
            let keyless = Self.secrets(store, nil)
            let none = await #expect(throws: CapstanError.self) { try await keyless.joinToken(given: nil) }
            #expect(none?.message.contains("an etcd store has no default key file, so give every replica the same one") == true, "\(String(describing: none))")
            #expect(try await keyless.joinToken(given: "given-join-token-0123") == "given-join-token-0123")
            #expect(try await keyless.sealStored() == .init(), "what is sealed is left for the replicas that hold the key")
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func clearValuesAnEarlierVersionLeftAreSealedInPlace(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            // As the landed code wrote them: the bare token, and the CA's key PEM in clear.
            let token = "legacy-join-token-0123456789"
            let authority = try CertificateAuthority.create()
            let clearCA = try JSONEncoder().encode(["certificate": authority.certificatePEM, "key": authority.keyPEM])
            let clearRevision = try await store.put(StoreLayout.joinToken, Data(token.utf8)).modRevision
            _ = try await store.put(StoreLayout.tlsAuthority, clearCA)

            let keyring = SecretKeyring.generate()
            let secrets = Self.secrets(store, keyring)
            #expect(try await secrets.sealStored().sealedFromClear == ["the join token", "the CA's private key"])
            try await Self.expectNothingInClear(store, token: token)
            // Nor in the history: the revisions that held them are compacted away.
            let old = await #expect(throws: StoreError.self) {
                try await store.range(RangeRequest(.key(StoreLayout.joinToken), revision: clearRevision))
            }
            #expect(old?.code == .compacted)
            #expect(try await secrets.joinToken(given: nil) == token)
            #expect(try await secrets.authority().keyPEM == authority.keyPEM)
            #expect(try await secrets.sealStored() == .init(), "sealed once, not again")

            // A clear value and no key to seal it with: refused rather than left in clear.
            _ = try await store.put(StoreLayout.joinToken, Data(token.utf8))
            let keyless = await #expect(throws: CapstanError.self) { try await Self.secrets(store, nil).sealStored() }
            #expect(keyless?.message.contains("has no default key file") == true)
        }
    }

    @Test func anAlteredOrMovedSealedValueDoesNotOpen() async throws {
        try await StoreEngine.sqlite.withStore { store in
            let keyring = SecretKeyring.generate()
            let secrets = Self.secrets(store, keyring)
            _ = try await secrets.joinToken(given: nil)
            _ = try await secrets.authority()
            var sealed = try JSONDecoder().decode(SealedValue.self, from: try #require(try await store.get(StoreLayout.joinToken)).value)
            // Moved: the CA's sealed key put where the join token goes does not open there.
            let authority = try JSONDecoder().decode(
                InstallationSecrets.StoredAuthority.self, from: try #require(try await store.get(StoreLayout.tlsAuthority)).value)
            _ = try await store.put(StoreLayout.joinToken, try JSONEncoder().encode(try #require(authority.sealedKey)))
            let moved = await #expect(throws: CapstanError.self) { try await secrets.joinToken(given: nil) }
            #expect(moved?.message.contains("the join token in the store does not open under secret key \(keyring.currentID): it was altered") == true)
            // Altered: one byte of the ciphertext changed.
            var bytes = try #require(Data(base64Encoded: sealed.sealed))
            bytes[bytes.count - 1] ^= 1
            sealed.sealed = bytes.base64EncodedString()
            _ = try await store.put(StoreLayout.joinToken, try JSONEncoder().encode(sealed))
            let altered = await #expect(throws: CapstanError.self) { try await secrets.joinToken(given: nil) }
            #expect(altered?.message.contains("it was altered") == true, "\(String(describing: altered))")
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func aKeyRotationResealsBoth(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let old = SecretKeyring.generate()
            let token = try await Self.secrets(store, old).joinToken(given: nil)
            let authority = try await Self.secrets(store, old).authority()
            // rotate-key: both keys in the file while the store is rewritten, then the new one only.
            let both = old.withNewCurrentKey()
            #expect(try await Self.secrets(store, both).sealStored().resealed == ["the join token", "the CA's private key"])
            let rotated = Self.secrets(store, both.currentOnly)
            #expect(try await rotated.joinToken(given: nil) == token)
            #expect(try await rotated.authority().keyPEM == authority.keyPEM)
            let stale = await #expect(throws: CapstanError.self) { try await Self.secrets(store, old).joinToken(given: nil) }
            #expect(stale?.message.contains("which this server does not hold") == true)
            try await Self.expectNothingInClear(store, token: token)
        }
    }
}
