import CapstanCore
import Crypto
import Foundation

/// The server's secret keys (AES-256), which wrap the data key of every secret version.
///
/// The first key is current: new data keys are wrapped under it. Keys after it are still
/// accepted for unwrapping, which is how a rotation proceeds without a moment when some data
/// key cannot be read. A key's id is the start of its SHA-256.
///
/// The key file holds one base64 key per line (`#` starts a comment); `CAPSTAN_SECRET_KEY`
/// holds one key the same way.
public struct SecretKeyring: Sendable {
    struct Key: Sendable {
        var id: String
        /// The key's 32 bytes (`SymmetricKey` is not `Sendable`).
        var bytes: Data
        var key: SymmetricKey { SymmetricKey(data: bytes) }
    }

    let keys: [Key]

    public var currentID: String { keys[0].id }
    public var ids: [String] { keys.map(\.id) }

    init(keys: [SymmetricKey]) throws(CapstanError) {
        guard !keys.isEmpty else { throw CapstanError(.invalidArgument, "the secret key file holds no key") }
        self.keys = keys.map { key in Key(id: Self.id(of: key), bytes: key.withUnsafeBytes { Data($0) }) }
    }

    /// A keyring of one new random key.
    public static func generate() -> SecretKeyring {
        // One key is never an empty list.
        try! SecretKeyring(keys: [SymmetricKey(size: .bits256)])
    }

    /// Parses key file text: base64 keys of 32 bytes, one per line, the current one first.
    public static func parse(_ text: String, source: String) throws(CapstanError) -> SecretKeyring {
        var keys: [SymmetricKey] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            guard let bytes = Data(base64Encoded: trimmed), bytes.count == 32 else {
                throw CapstanError(.invalidArgument, "\(source) line \(number + 1): a secret key is 32 bytes in base64 (44 characters)")
            }
            keys.append(SymmetricKey(data: bytes))
        }
        guard !keys.isEmpty else { throw CapstanError(.invalidArgument, "\(source) holds no secret key") }
        return try SecretKeyring(keys: keys)
    }

    /// Reads `path`; when it does not exist and `create`, writes a new key there first (mode 0600).
    public static func load(path: String, create: Bool) throws -> SecretKeyring {
        if !FileManager.default.fileExists(atPath: path) {
            guard create else { throw CapstanError(.invalidArgument, "--secret-key-file: \(path) does not exist") }
            let fresh = generate()
            try fresh.save(to: path)
            return fresh
        }
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        if let mode = attributes[.posixPermissions] as? Int, mode & 0o077 != 0 {
            throw CapstanError(
                .invalidArgument, "\(path) is readable by others (mode \(String(mode, radix: 8))): chmod 600 it, it holds the key to every secret")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CapstanError(.invalidArgument, "--secret-key-file: cannot read \(path)")
        }
        return try parse(String(decoding: data, as: UTF8.self), source: path)
    }

    /// Writes the keys (current first) to `path`, mode 0600, replacing it whole.
    public func save(to path: String) throws {
        var text = "# Capstan secret keys: the first wraps new secrets, the others are still read. Keep this file private.\n"
        for key in keys {
            text += key.bytes.base64EncodedString() + "\n"
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        do {
            try PrivateFile.replace(path, with: Data(text.utf8))
        } catch {
            throw CapstanError(.invalidArgument, "cannot write the secret key file \(path): \(error.message)")
        }
    }

    /// This keyring with a new current key in front of the existing ones.
    public func withNewCurrentKey() -> SecretKeyring {
        // Never empty: one key is added to at least one.
        try! SecretKeyring(keys: [SymmetricKey(size: .bits256)] + keys.map(\.key))
    }

    /// Only the current key.
    public var currentOnly: SecretKeyring {
        try! SecretKeyring(keys: [keys[0].key])
    }

    static func id(of key: SymmetricKey) -> String {
        let digest = key.withUnsafeBytes { SHA256.hash(data: Data($0)) }
        return String(ConfigRecord.hex(digest).prefix(16))
    }

    // MARK: Wrapping data keys

    /// A data key wrapped under a secret key, as stored at `secret-keys/ID`.
    struct WrappedKey: Codable, Sendable {
        /// The id of the secret key it is wrapped under.
        var key: String
        /// AES-GCM of the data key (nonce, ciphertext and tag), base64.
        var wrapped: String
    }

    func wrap(_ dataKey: SymmetricKey, id: String) throws -> WrappedKey {
        let sealed = try dataKey.withUnsafeBytes { bytes in
            try AES.GCM.seal(Data(bytes), using: keys[0].key, authenticating: Data(id.utf8))
        }
        guard let combined = sealed.combined else { throw CapstanError(.internal, "AES-GCM gave no combined form") }
        return WrappedKey(key: keys[0].id, wrapped: combined.base64EncodedString())
    }

    func unwrap(_ wrapped: WrappedKey, id: String) throws -> SymmetricKey {
        guard let key = keys.first(where: { $0.id == wrapped.key }) else {
            throw CapstanError(
                .unavailable,
                "secret data key \(id) is wrapped under secret key \(wrapped.key), which this server does not hold (it has \(ids.joined(separator: ", ")))")
        }
        guard let combined = Data(base64Encoded: wrapped.wrapped) else {
            throw CapstanError(.internal, "secret data key \(id) is not base64")
        }
        do {
            let box = try AES.GCM.SealedBox(combined: combined)
            return SymmetricKey(data: try AES.GCM.open(box, using: key.key, authenticating: Data(id.utf8)))
        } catch {
            throw CapstanError(.internal, "secret data key \(id) does not open under secret key \(key.id): it was altered")
        }
    }
}
