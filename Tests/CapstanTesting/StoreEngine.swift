import CapstanStore
import Foundation

/// The store engines every conformance and service test runs against.
public enum StoreEngine: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite

    public var description: String { rawValue }

    /// Opens a fresh, empty store of this engine, runs its background work while `body` runs,
    /// and tears everything down afterwards.
    public func withStore<T: Sendable>(_ body: @Sendable (any KeyValueStore) async throws -> T) async throws -> T {
        let directory = try TemporaryDirectory(prefix: "capstan-\(rawValue)")
        defer { directory.remove() }
        let store = try SQLiteStore(path: directory.file("capstan.sqlite"))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            defer { group.cancelAll() }
            return try await body(store)
        }
    }
}
