import CapstanCore
import CapstanStore
import CapstanTesting
import Foundation
import Logging
import Synchronization
import Testing

@testable import CapstanServer

/// Schedules over a real store, with the clock in the test's hand. A "restart" is a new set of
/// services over the same store.
@Suite("Schedules")
struct ScheduleServiceTests {
    final class Clock: Sendable {
        private let time: Mutex<Date>
        init(_ text: String) { time = Mutex(ISO8601DateFormatter().date(from: text)!) }
        func set(_ text: String) { time.withLock { $0 = ISO8601DateFormatter().date(from: text)! } }
        var now: Date { time.withLock { $0 } }
    }

    struct Services {
        let jobs: JobService
        let schedules: ScheduleService
    }

    /// Job and schedule services over `store`, with one enrolled node (not connected, so its
    /// jobs end at once, `unreachable`).
    static func services(_ store: any KeyValueStore, clock: Clock, retention: JobService.Retention = .init()) async throws -> Services {
        let logger = Logger(label: "test")
        let registry = NodeRegistry(store: store, heartbeatInterval: .seconds(5), joinToken: "join-token-0123456789", logger: logger)
        _ = try? await registry.enroll(
            EnrollRequest(
                joinToken: "join-token-0123456789", name: "node-1", labels: [:],
                facts: NodeFacts(
                    hostname: "h", os: "linux", kernel: "6", arch: "x86_64", cpuCount: 1, memoryBytes: 1, addresses: [], agentVersion: "t",
                    bootTime: nil)))
        let jobs = JobService(store: store, registry: registry, links: AgentLinks(), retention: retention, logger: logger)
        return Services(jobs: jobs, schedules: ScheduleService(store: store, jobs: jobs, logger: logger, now: { clock.now }))
    }

    static func spec(_ cron: String, missed: ScheduleSpec.MissedTicks = .skip) -> ScheduleSpec {
        ScheduleSpec(cron: cron, missed: missed, job: JobSpec(selector: "", command: ["true"]))
    }

    @Test func eachTickStartsOneJobAcrossRestartsAndReplicas() async throws {
        try await StoreEngine.sqlite.withStore { store in
            let clock = Clock("2026-01-01T00:00:30Z")
            let first = try await Self.services(store, clock: clock)
            let created = try await first.schedules.put("every-minute", Self.spec("* * * * *"))
            #expect(created.nextTick == ISO8601DateFormatter().date(from: "2026-01-01T00:01:00Z"))
            try await first.schedules.tick()
            #expect(try await first.jobs.list().items.isEmpty, "no tick yet")

            clock.set("2026-01-01T00:01:05Z")
            try await first.schedules.tick()
            try await first.schedules.tick()
            #expect(try await first.jobs.list().items.count == 1)
            let info = try await first.schedules.schedule("every-minute")
            #expect(info.lastTick == ISO8601DateFormatter().date(from: "2026-01-01T00:01:00Z"))
            #expect(info.lastJob == (try await first.jobs.list().items.first?.id))

            // A restart, then two replicas seeing the same tick at once.
            let restarted = try await Self.services(store, clock: clock)
            try await restarted.schedules.tick()
            #expect(try await first.jobs.list().items.count == 1, "the restart fired the handled tick again")
            clock.set("2026-01-01T00:02:01Z")
            let other = try await Self.services(store, clock: clock)
            async let a: Void = restarted.schedules.tick()
            async let b: Void = other.schedules.tick()
            _ = try await (a, b)
            let jobs = try await first.jobs.list().items
            #expect(jobs.count == 2, "\(jobs.map(\.id))")
            var keys: Set<String> = []
            for summary in jobs {
                // The job runs in whichever service started it: wait for it through the store.
                var finished: JobInfo?
                try await eventually(timeout: .seconds(10), "job \(summary.id) to finish") {
                    finished = try await first.jobs.job(summary.id)
                    return finished?.state.isFinished == true
                }
                let job = try #require(finished)
                keys.insert(job.spec.idempotencyKey ?? "")
                #expect(job.nodes.map(\.state) == [.unreachable])
            }
            func key(_ tick: String) -> String {
                "schedule:every-minute:\(Int64(ISO8601DateFormatter().date(from: tick)!.timeIntervalSince1970))"
            }
            #expect(keys == [key("2026-01-01T00:01:00Z"), key("2026-01-01T00:02:00Z")])
        }
    }

    @Test func ticksMissedWhileDownAreSkippedOrRunOnce() async throws {
        try await StoreEngine.sqlite.withStore { store in
            let clock = Clock("2026-01-01T00:00:30Z")
            let services = try await Self.services(store, clock: clock)
            _ = try await services.schedules.put("skipper", Self.spec("0 * * * *"))
            _ = try await services.schedules.put("catcher", Self.spec("0 * * * *", missed: .runOnce))
            // Down from before 01:00 to 03:30: three ticks passed, the latest half an hour ago.
            clock.set("2026-01-01T03:30:00Z")
            try await services.schedules.tick()
            let jobs = try await services.jobs.list().items
            #expect(jobs.count == 1)
            let catcher = try await services.schedules.schedule("catcher")
            let skipper = try await services.schedules.schedule("skipper")
            #expect(catcher.lastJob == jobs.first?.id)
            #expect(skipper.lastJob == nil)
            #expect(skipper.lastTick == ISO8601DateFormatter().date(from: "2026-01-01T03:00:00Z"))
            #expect(skipper.nextTick == ISO8601DateFormatter().date(from: "2026-01-01T04:00:00Z"))
            // On time again, both fire.
            clock.set("2026-01-01T04:00:10Z")
            try await services.schedules.tick()
            #expect(try await services.jobs.list().items.count == 3)
        }
    }

    @Test func finishedJobsAreKeptByCountAndAge() async throws {
        try await StoreEngine.sqlite.withStore { store in
            let services = try await Self.services(
                store, clock: Clock("2026-01-01T00:00:00Z"), retention: JobService.Retention(count: 2, age: .seconds(3600)))
            var ids: [String] = []
            for _ in 0..<3 {
                let job = try await services.jobs.submit(JobSpec(selector: "", command: ["true"]))
                _ = try await services.jobs.waitUntilFinished(job.id)
                ids.append(job.id)
            }
            await services.jobs.prune()
            let kept = try await services.jobs.list().items.map(\.id)
            #expect(kept.count == 2)
            #expect(Set(kept).isSubset(of: Set(ids)))
            await services.jobs.prune(now: Date().addingTimeInterval(7200))
            #expect(try await services.jobs.list().items.isEmpty)
            do {
                _ = try await services.jobs.job(kept[0])
                Issue.record("a pruned job is still there")
            } catch let error as CapstanError {
                #expect(error.code == .notFound)
            }
        }
    }

    @Test func badSchedulesAreRefused() async throws {
        try await StoreEngine.sqlite.withStore { store in
            let services = try await Self.services(store, clock: Clock("2026-01-01T00:00:00Z"))
            let cases: [(String, ScheduleSpec, String)] = [
                ("ok", Self.spec("61 * * * *"), "minute 61 is out of range 0-59"),
                ("ok", Self.spec("* * * *"), "expected 5 fields"),
                ("ok", ScheduleSpec(cron: "@daily", timeZone: "Mars/Olympus", job: JobSpec(selector: "", command: ["true"])), "not a time zone"),
                ("ok", ScheduleSpec(cron: "@daily", job: JobSpec(selector: "", command: [])), "the command is empty"),
                ("ok", ScheduleSpec(cron: "@daily", job: JobSpec(selector: "a in (", command: ["true"])), "never closed"),
                ("ok", ScheduleSpec(cron: "@daily", job: JobSpec(selector: "", command: ["true"], idempotencyKey: "k")), "idempotency key"),
                ("Bad Name", Self.spec("@daily"), "schedule name"),
            ]
            for (name, spec, message) in cases {
                do {
                    _ = try await services.schedules.put(name, spec)
                    Issue.record("\(spec) was accepted")
                } catch let error as CapstanError {
                    #expect(error.description.contains(message), "\(error.description)")
                }
            }
            #expect(try await services.schedules.list().items.isEmpty)
        }
    }
}
