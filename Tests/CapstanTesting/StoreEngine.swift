import CapstanStore
import Foundation

/// The store engines every conformance and service test runs against.
public enum StoreEngine: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite
    /// A real etcd started for the test, reached through its HTTP/JSON gateway.
    case etcd

    public var description: String { rawValue }

    /// Opens a fresh, empty store of this engine, runs its background work while `body` runs,
    /// and tears everything down afterwards.
    public func withStore<T: Sendable>(_ body: @Sendable (any KeyValueStore) async throws -> T) async throws -> T {
        switch self {
        case .sqlite:
            let directory = try TemporaryDirectory(prefix: "capstan-\(rawValue)")
            defer { directory.remove() }
            return try await Self.running(try SQLiteStore(path: directory.file("capstan.sqlite")), body)
        case .etcd:
            return try await EtcdProcess.with { etcd in
                // A prefix, as a shared cluster would have: keys must map in and out of it.
                // A longer deadline than a server's 10 s: the whole suite, dozens of etcd members
                // among it, runs side by side on two cores, and a slow answer is not a wrong one.
                let store = try await EtcdStore(endpoints: [etcd.clientURL], prefix: "/test-install", timeout: .seconds(30))
                do {
                    let result = try await Self.running(store, body)
                    await store.shutdown()
                    return result
                } catch {
                    await store.shutdown()
                    throw error
                }
            }
        }
    }

    private static func running<T: Sendable>(
        _ store: any KeyValueStore, _ body: @Sendable (any KeyValueStore) async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            defer { group.cancelAll() }
            return try await body(store)
        }
    }
}
