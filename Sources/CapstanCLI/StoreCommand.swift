import ArgumentParser
import CapstanCore
import CapstanServer
import CapstanStore
import Foundation
import Logging

/// `capstan store`: work on a store directly, with no server in between.
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Work on a store directly (no server).",
        subcommands: [Copy.self])

    struct Copy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy an installation's data from one store to another, e.g. SQLite to etcd.",
            discussion: """
                Reads the source at one revision and replays it into the target, which must hold \
                nothing under its prefix yet. Keys written together in one source revision are \
                written together, in the same order, so every config keeps its history; the \
                target numbers revisions its own way, so watchers resync after the move. Keys held \
                by a lease (liveness, locks) are left out. The target is read back and its count \
                and checksum compared with the source's. Stop writes to the source first: what is \
                written after the snapshot is not copied. The join token, the CA's key and secrets \
                are copied sealed: give the target's servers the source's secret key file.
                """)

        @Option(help: "Source store: sqlite:PATH or etcd://HOST:PORT[,HOST:PORT...].") var from: String
        @Option(help: "Target store: sqlite:PATH or etcd://HOST:PORT[,HOST:PORT...].") var to: String
        @Option(help: "Key prefix of the installation in an etcd source (as its --store-prefix).") var fromPrefix: String?
        @Option(help: "Key prefix to copy to in an etcd target (as its --store-prefix).") var toPrefix: String?

        func validate() throws {
            _ = try endpoints()
        }

        private func endpoints() throws -> (source: (StoreLocation, String), target: (StoreLocation, String)) {
            let source = try Self.location(from, prefix: fromPrefix, flag: "--from")
            let target = try Self.location(to, prefix: toPrefix, flag: "--to")
            guard source != target else { throw ValidationError("--from and --to name the same store and prefix") }
            if case .sqlite(let path) = source.0, !FileManager.default.fileExists(atPath: path) {
                throw ValidationError("--from: no SQLite store at \(path)")
            }
            return (source, target)
        }

        private static func location(_ text: String, prefix: String?, flag: String) throws -> (StoreLocation, String) {
            let location: StoreLocation
            do { location = try StoreLocation(parsing: text) } catch { throw ValidationError("\(flag): \(error.message)") }
            guard let prefix else { return (location, "") }
            guard case .etcd = location else { throw ValidationError("\(flag)-prefix applies only to an etcd store") }
            do { return (location, try StoreLocation.normalizedPrefix(prefix)) } catch {
                throw ValidationError("\(flag)-prefix: \(error.message)")
            }
        }

        func run() async throws {
            let (source, target) = try endpoints()
            var logger = Logger(label: "capstan.store")
            logger.logLevel = .warning
            let from = try await source.0.open(prefix: source.1, logger: logger)
            let to: any KeyValueStore
            do {
                to = try await target.0.open(prefix: target.1, logger: logger)
            } catch {
                await StoreLocation.close(from)
                throw error
            }
            let started = ContinuousClock.now
            let report: StoreCopy.Report
            do {
                report = try await StoreCopy.copy(from: from, to: to)
            } catch {
                await StoreLocation.close(from)
                await StoreLocation.close(to)
                throw error
            }
            await StoreLocation.close(from)
            await StoreLocation.close(to)
            let elapsed = ContinuousClock.now - started
            printLine(
                "copied \(report.keys) keys in \(report.revisions) revisions (source revision \(report.sourceRevision)) from \(source.0) to \(target.0) in \(elapsed.formatted(.units(allowed: [.seconds, .milliseconds], width: .narrow)))"
            )
            if report.skippedLeased > 0 { printLine("left out \(report.skippedLeased) keys held by leases") }
            printLine("verified: \(report.keys) keys, checksum \(report.checksum) on both sides")
        }
    }
}
