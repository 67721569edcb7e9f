import CapstanCore
import CapstanServer
import CapstanStore
import CapstanTesting
import Foundation
import Logging
import Testing

/// The rollout service on each store engine: candidates, the one-rollout-per-key rule, refused
/// plain writes, promote and abort, and bad input that creates nothing.
@Suite("Rollout service", .timeLimit(.minutes(2)))
struct RolloutServiceTests {
    struct Fixture: Sendable {
        let configs: ConfigService
        let rollouts: RolloutService
        let store: any KeyValueStore

        func content(_ key: String) async throws -> String {
            String(decoding: try await configs.get(try ConfigKey(key)).content, as: UTF8.self)
        }
    }

    static let key = try! ConfigKey("prod/web/app.yaml")

    func withFixture<T: Sendable>(engine: StoreEngine, _ body: @Sendable (Fixture) async throws -> T) async throws -> T {
        try await engine.withStore { store in
            let logger = Logger(label: "test.rollouts")
            let configs = ConfigService(store: store)
            _ = try await configs.createNamespace("prod", author: "test")
            try await configs.put(Self.key, content: Data("port: 1\n".utf8), author: "ann")
            let registry = NodeRegistry(store: store, heartbeatInterval: .seconds(5), joinToken: "join-token-0123456789", logger: logger)
            let rollouts = RolloutService(
                store: store, configs: configs, registry: registry, checks: CheckService(store: store, logger: logger),
                templates: TemplateService(store: store, logger: logger), logger: logger)
            return try await body(Fixture(configs: configs, rollouts: rollouts, store: store))
        }
    }

    /// Clients in and out of a rollout (by the same hash the server uses, so found by trying).
    func clients(_ rollouts: RolloutService, in name: String) async throws -> (member: ClientIdentity, other: ClientIdentity) {
        var member: ClientIdentity?
        var other: ClientIdentity?
        for index in 0..<64 where member == nil || other == nil {
            let client = ClientIdentity(name: "client-\(index)")
            if try await rollouts.view(Self.key, for: client).map({ _ in true }) == true { member = member ?? client } else { other = other ?? client }
        }
        return (try #require(member), try #require(other))
    }

    @Test(arguments: StoreEngine.allCases)
    func aCandidateReachesMembersAndPromotionMakesItMain(engine: StoreEngine) async throws {
        try await withFixture(engine: engine) { fixture in
            let rollouts = fixture.rollouts
            _ = try await rollouts.start("web-v2", RolloutSpec(percentSteps: [50, 100]), actor: "ann")
            let stored = try await rollouts.putCandidate("web-v2", key: Self.key, content: Data("port: 2\n".utf8), format: nil, author: "ann")
            #expect(stored.candidates.map(\.name) == [Self.key.description])
            #expect(stored.candidates.first?.revision ?? 0 > 0)

            let (member, other) = try await clients(rollouts, in: "web-v2")
            let view = try #require(try await rollouts.view(Self.key, for: member))
            #expect(view.rollout == "web-v2")
            #expect(String(decoding: view.entry?.content ?? Data(), as: UTF8.self) == "port: 2\n")
            #expect(try await rollouts.view(Self.key, for: other).map { _ in true } == nil)
            #expect(try await fixture.content(Self.key.description) == "port: 1\n", "readers outside the rollout keep the main version")

            // A plain write is refused with the rollout's name; so is a second rollout of the key.
            await #expect {
                try await fixture.configs.put(Self.key, content: Data("port: 3\n".utf8), author: "bob")
            } throws: { error in
                let error = error as? CapstanError
                return error?.code == .conflict && error?.message.contains("under rollout web-v2") == true
            }
            await #expect { try await fixture.configs.delete(Self.key, author: "bob") } throws: { ($0 as? CapstanError)?.code == .conflict }
            _ = try await rollouts.start("other", RolloutSpec(percentSteps: [10]), actor: "bob")
            await #expect {
                try await rollouts.putCandidate("other", key: Self.key, content: Data("port: 4\n".utf8), format: nil, author: "bob")
            } throws: { error in
                (error as? CapstanError)?.message == "config prod/web/app.yaml is already under rollout web-v2: one open rollout per key"
            }

            // Widening keeps the member; promotion writes a main version that names the rollout.
            _ = try await rollouts.step("web-v2", actor: "ann")
            #expect(try await rollouts.view(Self.key, for: other).map { _ in true } == true, "at 100% everyone is in")
            let promoted = try await rollouts.promote("web-v2", actor: "ann")
            #expect(promoted.state == .promoted)
            #expect(promoted.transitions.map(\.action) == ["start", "candidate", "step", "promote"])
            #expect(try await fixture.content(Self.key.description) == "port: 2\n")
            let history = try await fixture.configs.history(Self.key)
            #expect(history.items.first?.comment == "promoted from rollout web-v2")
            #expect(history.items.first?.version == 2)
            let candidates = try await rollouts.candidateHistory(Self.key)
            #expect(candidates.map(\.comment) == ["candidate of rollout web-v2 (promoted)"])
            #expect(try await rollouts.view(Self.key, for: member).map { _ in true } == nil)
            await #expect(throws: CapstanError.self) { try await rollouts.abort("web-v2", actor: "ann") }

            // The key is free again: plain writes go through, and another rollout may hold it.
            try await fixture.configs.put(Self.key, content: Data("port: 5\n".utf8), author: "bob")
            _ = try await rollouts.putCandidate("other", key: Self.key, content: Data("port: 6\n".utf8), format: nil, author: "bob")
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func abortKeepsTheMainVersionAndTheCandidateAsAbandoned(engine: StoreEngine) async throws {
        try await withFixture(engine: engine) { fixture in
            let rollouts = fixture.rollouts
            _ = try await rollouts.start("gone", RolloutSpec(percentSteps: [100]), actor: "ann")
            _ = try await rollouts.putCandidate("gone", key: Self.key, content: Data(), format: nil, deleting: true, author: "ann")
            let client = ClientIdentity(name: "anyone")
            let view = try #require(try await rollouts.view(Self.key, for: client))
            #expect(view.entry.map { _ in true } == nil, "a candidate that deletes the key: members read nothing")
            let aborted = try await rollouts.abort("gone", actor: "ann", reason: "changed my mind")
            #expect(aborted.state == .aborted)
            #expect(aborted.transitions.last?.detail == "changed my mind")
            #expect(try await rollouts.view(Self.key, for: client).map { _ in true } == nil)
            #expect(try await fixture.content(Self.key.description) == "port: 1\n")
            #expect(try await rollouts.candidateHistory(Self.key).map(\.comment) == ["candidate of rollout gone (abandoned)"])
            await #expect(throws: CapstanError.self) { try await rollouts.step("gone", actor: "ann") }
            try await fixture.configs.put(Self.key, content: Data("port: 7\n".utf8), author: "bob")
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func aMembersWatchSeesTheCandidateThenTheMainVersionAtAbort(engine: StoreEngine) async throws {
        try await withFixture(engine: engine) { fixture in
            let rollouts = fixture.rollouts
            let from = try await fixture.configs.status().revision + 1
            _ = try await rollouts.start("watched", RolloutSpec(percentSteps: [100]), actor: "ann")
            _ = try await rollouts.putCandidate("watched", key: Self.key, content: Data("port: 2\n".utf8), format: nil, author: "ann")
            _ = try await rollouts.abort("watched", actor: "ann")
            let member = ClientIdentity(name: "anyone")
            var contents: [String] = []
            for try await batch in rollouts.watch(try KeyPrefix("prod/"), from: from, for: member) {
                contents += batch.map { $0.content ?? "-" }
                if contents.count >= 2 { break }
            }
            #expect(contents == ["port: 2\n", "port: 1\n"])
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func badInputIsRefusedAndCreatesNothing(engine: StoreEngine) async throws {
        try await withFixture(engine: engine) { fixture in
            let rollouts = fixture.rollouts
            let refused: [(RolloutSpec, String)] = [
                (RolloutSpec(percentSteps: [0]), "percentage 0 is outside 1..100"),
                (RolloutSpec(percentSteps: [101]), "percentage 101 is outside 1..100"),
                (RolloutSpec(percentSteps: [50, 10]), "steps must increase: 10 comes after 50 in 50,10"),
                (RolloutSpec(percentSteps: [10], gates: ["metric:load1"]), "--gate"),
                (RolloutSpec(percentSteps: [10], gates: ["check=http-ok"]), "--gate check=http-ok: no check \"http-ok\" exists"),
                (RolloutSpec(selector: "role in (", percentSteps: [10]), "selector"),
                (RolloutSpec(), "give --percent or --nodes"),
                (RolloutSpec(percentSteps: [10], autoPromote: true), "--auto-promote needs --step-interval"),
            ]
            for (spec, message) in refused {
                await #expect {
                    try await rollouts.start("bad", spec, actor: "ann")
                } throws: { error in
                    guard let error = error as? CapstanError else { return false }
                    return error.message.contains(message) && !error.message.contains("\n")
                }
            }
            #expect(try await rollouts.list().items.isEmpty)

            _ = try await rollouts.start("good", RolloutSpec(percentSteps: [10]), actor: "ann")
            await #expect {
                try await rollouts.putCandidate("good", key: try ConfigKey("prod/web/missing.yaml"), content: Data("a: 1\n".utf8), format: nil, author: "ann")
            } throws: { ($0 as? CapstanError)?.code == .configNotFound }
            await #expect {
                try await rollouts.putCandidate("good", key: Self.key, content: Data("port: [1\n".utf8), format: nil, author: "ann")
            } throws: { ($0 as? CapstanError)?.code == .invalidContent }
            await #expect {
                try await rollouts.putCandidate("nope", key: Self.key, content: Data("port: 2\n".utf8), format: nil, author: "ann")
            } throws: { ($0 as? CapstanError)?.code == .notFound }
            #expect(try await rollouts.rollout("good").candidates.isEmpty)
            #expect(try await rollouts.candidateHistory(Self.key).isEmpty)
            // Nothing holds the key.
            try await fixture.configs.put(Self.key, content: Data("port: 8\n".utf8), author: "bob")
        }
    }
}
