import CapstanCore
import CapstanStore
import CapstanTesting
import Foundation
import Logging
import Synchronization
import Testing

@testable import CapstanServer

/// What the server reads to decide a running rollout every second, and to step it.
@Suite("Rollout decisions", .timeLimit(.minutes(2)))
struct RolloutDecisionTests {
    /// A rollout without gates has nothing to evaluate over its members: deciding it must not
    /// list the nodes (on a fleet of 10,000 that decoded 10,000 records every second).
    @Test func aRolloutWithoutGatesIsDecidedWithoutReadingTheNodes() async throws {
        try await StoreEngine.sqlite.withStore { base in
            let store = CountingStore(base, prefix: StoreLayout.nodes)
            let logger = Logger(label: "test.rollouts")
            let configs = ConfigService(store: store)
            _ = try await configs.createNamespace("prod", author: "test")
            for path in ["app", "other"] {
                try await configs.put(try ConfigKey("prod/web/\(path).yaml"), content: Data("port: 1\n".utf8), author: "ann")
            }
            let registry = NodeRegistry(store: store, heartbeatInterval: .seconds(5), joinToken: "join-token-0123456789", logger: logger)
            let rollouts = RolloutService(
                store: store, configs: configs, registry: registry, checks: CheckService(store: store, logger: logger),
                templates: TemplateService(store: store, logger: logger), logger: logger)
            _ = try await rollouts.start("plain", RolloutSpec(percentSteps: [10, 100]), actor: "ann")
            _ = try await rollouts.putCandidate(
                "plain", key: try ConfigKey("prod/web/app.yaml"), content: Data("port: 2\n".utf8), format: nil, author: "ann")
            _ = try await rollouts.start("gated", RolloutSpec(percentSteps: [10, 100], gates: ["unhealthy=0"]), actor: "ann")
            _ = try await rollouts.putCandidate(
                "gated", key: try ConfigKey("prod/web/other.yaml"), content: Data("port: 2\n".utf8), format: nil, author: "ann")

            let before = store.reads
            #expect(try await rollouts.decide("plain")?.action == nil)
            #expect(store.reads == before, "deciding a gateless rollout listed the nodes")
            // A step to every node has nobody to pick: it lists no nodes either.
            _ = try await rollouts.step("plain", actor: "ann")
            #expect(store.reads == before, "the step to 100 % listed the nodes")
            // A gate reads the members: the counter sees the listing when there is one.
            #expect(try await rollouts.decide("gated")?.action == nil)
            #expect(store.reads > before)
        }
    }
}

/// A store that counts the range reads under one prefix and passes everything to the store it wraps.
final class CountingStore: WrappingStore {
    let base: any KeyValueStore
    let prefix: String
    private let counted = Mutex(0)

    init(_ base: any KeyValueStore, prefix: String) {
        self.base = base
        self.prefix = prefix
    }

    /// Range reads so far of keys under `prefix`.
    var reads: Int { counted.withLock { $0 } }

    func range(_ request: RangeRequest) async throws -> RangeResult {
        if case .prefix(let read) = request.range, read.hasPrefix(prefix) { counted.withLock { $0 += 1 } }
        return try await base.range(request)
    }
}
