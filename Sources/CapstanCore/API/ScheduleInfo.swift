import Foundation

/// What `capstan schedule put` stores: a job to start on every tick of a cron expression.
public struct ScheduleSpec: Codable, Sendable, Hashable {
    /// What to do about ticks that passed while no server ran (or longer than a minute ago).
    public enum MissedTicks: String, Codable, Sendable, Hashable, CaseIterable {
        /// Let them go: the next job starts on the next tick.
        case skip
        /// Start one job for the latest of them, then go on with the next tick.
        case runOnce = "run-once"
    }

    /// Five fields (minute hour day-of-month month day-of-week) or a macro such as `@hourly`.
    public var cron: String
    /// The time zone the cron fields are read in (an IANA name); default UTC.
    public var timeZone: String
    public var missed: MissedTicks
    /// The job each tick starts (its idempotency key is set per tick).
    public var job: JobSpec

    public init(cron: String, timeZone: String = "UTC", missed: MissedTicks = .skip, job: JobSpec) {
        self.cron = cron
        self.timeZone = timeZone
        self.missed = missed
        self.job = job
    }
}

public struct ScheduleInfo: Codable, Sendable, Hashable {
    public var name: String
    public var spec: ScheduleSpec
    public var createdAt: Date
    /// The last tick that was handled (fired, or skipped as missed).
    public var lastTick: Date?
    /// The job the last fired tick started.
    public var lastJob: String?
    /// Why the last tick started no job, when it did not (no node matched, say).
    public var lastError: String?
    public var nextTick: Date?
    /// Selectors of the nodes its jobs may run on, from the run rules of the token that saved it;
    /// nil for any node.
    public var onlyOn: [String]?

    public init(
        name: String, spec: ScheduleSpec, createdAt: Date, lastTick: Date? = nil, lastJob: String? = nil, lastError: String? = nil,
        nextTick: Date? = nil
    ) {
        self.name = name
        self.spec = spec
        self.createdAt = createdAt
        self.lastTick = lastTick
        self.lastJob = lastJob
        self.lastError = lastError
        self.nextTick = nextTick
    }
}

public struct ScheduleList: Codable, Sendable, Hashable {
    public var items: [ScheduleInfo]

    public init(items: [ScheduleInfo]) {
        self.items = items
    }
}
