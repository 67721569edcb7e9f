import ArgumentParser
import CapstanCore
import CapstanServer
import Foundation
import Logging

/// `capstan server rotate-key`: a new secret key, every secret's data key rewrapped under it, the
/// join token and the CA's key re-sealed under it.
struct RotateKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-key",
        abstract: "Re-encrypt every secret's data key under a new secret key.",
        discussion: """
            Stop the servers first. The key file gets a new key in front of the old one, every data \
            key in the store is rewrapped under the new key (and the join token and the CA's private \
            key are re-sealed under it), then the old key leaves the file. Secret \
            versions themselves are not rewritten, so their revisions and hashes stay as they are. \
            Interrupted, it can be run again: the file holds both keys until the rewrapping is done. \
            Start the servers again afterwards (every replica with the new file).
            """)

    /// `--data-dir`, `--store`, `--store-prefix` and `--secret-key-file` are the server's own
    /// flags: `capstan server rotate-key --data-dir DIR`.
    @ParentCommand var server: ServerCommand

    func run() async throws {
        let configuration = try server.resolved()
        // The key the servers use, found as they find it.
        if let text = ProcessInfo.processInfo.environment["CAPSTAN_SECRET_KEY"], !text.isEmpty {
            throw ValidationError(
                "CAPSTAN_SECRET_KEY is set: rotate-key rewrites a key file; put the key in a file (--secret-key-file) and unset the variable")
        }
        guard let file = try server.secretKeyFileSetting() ?? ServerCommand.defaultSecretKeyFile(configuration) else {
            throw ValidationError("an etcd store has no default key file: give --secret-key-file")
        }
        if case .sqlite(let path) = configuration.storeLocation, !FileManager.default.fileExists(atPath: path) {
            throw ValidationError("no store at \(path): give --data-dir or --store")
        }
        let old: SecretKeyring
        do { old = try SecretKeyring.load(path: file, create: false) } catch let error as CapstanError { throw ValidationError(error.message) }
        // Both keys in the file before anything in the store changes: a run cut short leaves
        // every data key readable.
        let both = old.withNewCurrentKey()
        try both.save(to: file)
        var logger = Logger(label: "capstan.rotate-key")
        logger.logLevel = .warning
        let location = configuration.storeLocation
        let opened = try await location.open(prefix: configuration.storePrefix, timeout: .seconds(10), logger: logger)
        let count: Int
        let resealed: [String]
        do {
            count = try await ConfigService.rewrapSecretKeys(store: opened, keyring: both)
            resealed = try await InstallationSecrets(store: opened, keyring: both, logger: logger).sealStored().all
        } catch {
            await StoreLocation.close(opened)
            throw error
        }
        await StoreLocation.close(opened)
        try both.currentOnly.save(to: file)
        let retired = old.ids.joined(separator: ", ")
        let also = resealed.isEmpty ? "" : " and re-sealed " + resealed.joined(separator: " and ")
        printLine("rewrapped \(count) data keys\(also) under secret key \(both.currentID); key \(retired) is gone from \(file)")
        printLine("start the servers again, every replica with this file")
    }
}
