import CapstanCore
import CapstanStore
import Foundation
import Logging

/// Schedules: jobs started on the ticks of a cron expression. Records live at
/// `/capstan/schedules/NAME` with the last tick handled. Every replica checks every second;
/// each tick's job carries the idempotency key `schedule:NAME:EPOCH`, so a tick starts one job
/// however many replicas see it, and a restart does not start it again.
public final class ScheduleService: Sendable {
    let store: any KeyValueStore
    let jobs: JobService
    let logger: Logger
    let now: @Sendable () -> Date
    /// A tick no older than this is on time; older ones count as missed.
    static let onTime: TimeInterval = 60

    struct Record: Codable, Sendable {
        var info: ScheduleInfo
    }

    public init(store: any KeyValueStore, jobs: JobService, logger: Logger, now: @escaping @Sendable () -> Date = Date.init) {
        self.store = store
        self.jobs = jobs
        self.logger = logger
        self.now = now
    }

    // MARK: Records

    /// Creates or replaces a schedule.
    /// - Parameter onlyOn: selectors of the nodes its jobs may run on (its author's run rules);
    ///   nodes outside them are left out of every job it starts. nil for any node.
    public func put(_ name: String, _ spec: ScheduleSpec, onlyOn: [String]? = nil) async throws -> ScheduleInfo {
        let (cron, zone) = try Self.validate(name: name, spec: spec)
        let key = StoreLayout.schedule(name)
        let created = now()
        // A schedule put again keeps its place: ticks already handled are not handled again.
        let existing = try await store.get(key).flatMap { try? RecordCoding.decoder.decode(Record.self, from: $0.value) }
        var info = existing?.info ?? ScheduleInfo(name: name, spec: spec, createdAt: created)
        info.spec = spec
        info.onlyOn = onlyOn
        info.nextTick = cron.next(after: max(info.lastTick ?? created, created), in: zone)
        _ = try await store.put(key, try RecordCoding.encoder.encode(Record(info: info)))
        logger.info("schedule saved", metadata: ["schedule": "\(name)", "cron": "\(spec.cron)"])
        return info
    }

    public func list() async throws -> ScheduleList {
        ScheduleList(items: try await store.range(RangeRequest(.prefix(StoreLayout.schedules))).kvs.compactMap { kv in
            (try? RecordCoding.decoder.decode(Record.self, from: kv.value)).map { withNext($0.info) }
        })
    }

    public func schedule(_ name: String) async throws -> ScheduleInfo {
        guard let kv = try await store.get(StoreLayout.schedule(name)) else { throw Self.notFound(name) }
        return withNext(try RecordCoding.decoder.decode(Record.self, from: kv.value).info)
    }

    public func remove(_ name: String) async throws {
        let (deleted, _) = try await store.delete(.key(StoreLayout.schedule(name)))
        guard deleted > 0 else { throw Self.notFound(name) }
    }

    private func withNext(_ info: ScheduleInfo) -> ScheduleInfo {
        var info = info
        if let cron = try? CronExpression(info.spec.cron), let zone = TimeZone(identifier: info.spec.timeZone) {
            info.nextTick = cron.next(after: max(info.lastTick ?? info.createdAt, info.createdAt), in: zone)
        }
        return info
    }

    // MARK: Firing

    /// Checks every schedule every second, until cancelled.
    func run() async throws {
        while true {
            do {
                try await tick()
            } catch is CancellationError {
                return
            } catch {
                logger.warning("schedules could not be checked", metadata: ["error": "\(error)"])
            }
            try await Task.sleep(for: .seconds(1))
        }
    }

    /// Handles the ticks due now: for each schedule, the latest tick since the last one handled
    /// starts a job when it is on time (or, missed, with `run-once`); older ones are let go.
    func tick() async throws {
        let now = self.now()
        for kv in try await store.range(RangeRequest(.prefix(StoreLayout.schedules))).kvs {
            guard var record = try? RecordCoding.decoder.decode(Record.self, from: kv.value),
                let cron = try? CronExpression(record.info.spec.cron), let zone = TimeZone(identifier: record.info.spec.timeZone)
            else { continue }
            let info = record.info
            var latest: Date?
            var cursor = max(info.lastTick ?? info.createdAt, info.createdAt)
            // The latest tick at or before now (a server down for a year walks at most that).
            var steps = 0
            while steps < 600_000, let next = cron.next(after: cursor, in: zone), next <= now {
                latest = next
                cursor = next
                steps += 1
            }
            guard let due = latest else { continue }
            let onTime = now.timeIntervalSince(due) <= Self.onTime
            record.info.lastTick = due
            if onTime || info.spec.missed == .runOnce {
                var spec = info.spec.job
                spec.idempotencyKey = "schedule:\(info.name):\(Int64(due.timeIntervalSince1970))"
                do {
                    let job = try await jobs.submit(spec, onlyOn: info.onlyOn, leaveOutOthers: true)
                    record.info.lastJob = job.id
                    record.info.lastError = nil
                    logger.info("schedule fired", metadata: ["schedule": "\(info.name)", "tick": "\(due)", "job": "\(job.id)"])
                } catch let error as CapstanError {
                    record.info.lastError = error.description
                    logger.warning("a schedule's tick started no job", metadata: ["schedule": "\(info.name)", "error": "\(error)"])
                }
            } else {
                logger.info("schedule ticks missed and skipped", metadata: ["schedule": "\(info.name)", "latest": "\(due)"])
            }
            // Only if nobody changed the schedule meanwhile (another replica handled the tick,
            // or an operator put it again).
            _ = try await store.txn(
                TxnRequest(
                    compares: [Compare(key: kv.key, .modRevision(kv.modRevision), .equal)],
                    success: [.put(key: kv.key, value: try RecordCoding.encoder.encode(record))]))
        }
    }

    // MARK: Validation

    @discardableResult
    static func validate(name: String, spec: ScheduleSpec) throws(CapstanError) -> (CronExpression, TimeZone) {
        do { try NodeName.validate(name) } catch {
            throw CapstanError(.invalidArgument, error.message.replacingOccurrences(of: "node name", with: "schedule name"))
        }
        // Each tick's idempotency key (`schedule:NAME:EPOCH`, at most 200 characters) holds the name.
        guard name.count <= 180 else {
            throw CapstanError(.invalidArgument, "schedule name is \(name.count) characters long: the limit is 180")
        }
        let cron: CronExpression
        do { cron = try CronExpression(spec.cron) } catch {
            throw CapstanError(.invalidArgument, "--cron: \(error.description)")
        }
        guard let zone = TimeZone(identifier: spec.timeZone) else {
            throw CapstanError(.invalidArgument, "--time-zone \(spec.timeZone.quoted) is not a time zone name such as UTC or Europe/Paris")
        }
        guard spec.job.idempotencyKey == nil else {
            throw CapstanError(.invalidArgument, "a schedule sets each tick's idempotency key itself; give none")
        }
        try JobService.validate(spec.job)
        _ = try Selector(spec.job.selector)
        return (cron, zone)
    }

    static func notFound(_ name: String) -> CapstanError {
        CapstanError(.notFound, "schedule \(name.quoted) not found")
    }
}
