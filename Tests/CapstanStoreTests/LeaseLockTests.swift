import CapstanStore
import CapstanTesting
import Foundation
import Testing

/// Run-once work across replicas: two contenders on one store, on every engine. Each event is
/// awaited; the time limit catches a takeover that never comes.
@Suite("Lease lock")
struct LeaseLockTests {
    private enum Event: Sendable, Equatable {
        case started(String)
        case stopped(String)
    }

    /// Runs `holder`'s campaign in `group`, reporting when its work starts and stops.
    private static func contend(
        _ holder: String, store: any KeyValueStore, ttl: Int64, events: AsyncStream<Event>.Continuation,
        in group: inout ThrowingTaskGroup<Void, any Error>
    ) {
        group.addTask {
            let lock = LeaseLock(store: store, key: "/locks/sweep", holder: holder, ttl: ttl)
            try await lock.whileHolding {
                events.yield(.started(holder))
                defer { events.yield(.stopped(holder)) }
                try await Task.sleep(for: .seconds(3600))
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: StoreEngine.allCases)
    func oneHolderAtATimeAndTheNextTakesOverWhenItStops(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let (events, sink) = AsyncStream.makeStream(of: Event.self)
            var iterator = events.makeAsyncIterator()
            try await withThrowingTaskGroup(of: Void.self) { group in
                defer { group.cancelAll() }
                Self.contend("first", store: store, ttl: 30, events: sink, in: &group)
                #expect(await iterator.next() == .started("first"))
                let held = try #require(try await store.get("/locks/sweep"))
                #expect(String(decoding: held.value, as: UTF8.self) == "first")
                #expect(held.lease != nil)

                // A second campaign, as another replica would run it: it must wait.
                let (secondEvents, secondSink) = AsyncStream.makeStream(of: Event.self)
                var secondIterator = secondEvents.makeAsyncIterator()
                let contender = Task {
                    try await withThrowingTaskGroup(of: Void.self) { inner in
                        Self.contend("second", store: store, ttl: 30, events: secondSink, in: &inner)
                        try await inner.waitForAll()
                    }
                }
                defer { contender.cancel() }
                // Its compare failed and it now waits on a watch of the key (no other watch is open).
                try await eventually("the second contender to wait on the key") {
                    try await store.status().watchers == 1
                }
                #expect(try await store.get("/locks/sweep") == held, "the second contender touched the held key")

                // The first stops (its task is cancelled): it revokes its lease, and the second,
                // waiting on a watch of the key, takes over long before the 30 s lease would expire.
                group.cancelAll()
                #expect(await iterator.next() == .stopped("first"))
                #expect(await secondIterator.next() == .started("second"))
                let now = try #require(try await store.get("/locks/sweep"))
                #expect(String(decoding: now.value, as: UTF8.self) == "second")
                #expect(now.lease != held.lease)
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: StoreEngine.allCases)
    func aHolderThatLosesItsLeaseStopsItsWork(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let (events, sink) = AsyncStream.makeStream(of: Event.self)
            var iterator = events.makeAsyncIterator()
            try await withThrowingTaskGroup(of: Void.self) { group in
                defer { group.cancelAll() }
                // A long TTL: only the revocation below may take the lease, not a slow machine.
                Self.contend("only", store: store, ttl: 9, events: sink, in: &group)
                #expect(await iterator.next() == .started("only"))
                let held = try #require(try await store.get("/locks/sweep"))
                // Someone (an operator, or expiry after a stall) takes the lease away.
                try await store.revokeLease(try #require(held.lease))
                #expect(await iterator.next() == .stopped("only"))
                // It campaigns again and, alone, holds the lock anew under a fresh lease.
                #expect(await iterator.next() == .started("only"))
                let now = try #require(try await store.get("/locks/sweep"))
                #expect(now.lease != held.lease)
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: StoreEngine.allCases)
    func workThatFinishesReleasesTheLockAndItsErrorsReachTheCaller(engine: StoreEngine) async throws {
        struct Broken: Error {}
        try await engine.withStore { store in
            let lock = LeaseLock(store: store, key: "/locks/once", holder: "me", ttl: 30)
            try await lock.whileHolding {}
            #expect(try await store.get("/locks/once") == nil, "a finished holder left its key behind")
            await #expect(throws: Broken.self) {
                try await lock.whileHolding { throw Broken() }
            }
            #expect(try await store.get("/locks/once") == nil, "a failed holder left its key behind")
        }
    }
}
