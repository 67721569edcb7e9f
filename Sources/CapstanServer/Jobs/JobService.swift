import CapstanCore
import CapstanStore
import Foundation
import Logging
import Synchronization

/// Jobs: a command run on the nodes a selector picks. A job runs on the replica it was
/// submitted to; its record lives at `/capstan/jobs/ID`, each node's result at
/// `/capstan/job-nodes/ID/NODE`, and an idempotency key at `/capstan/job-keys/KEY`.
public final class JobService: Sendable {
    let store: any KeyValueStore
    let registry: NodeRegistry
    let links: AgentLinks
    let checks: CheckService?
    let logger: Logger
    let retention: Retention
    private let active = Mutex<[String: JobRun]>([:])
    /// Names this replica in job records; its key under `job-runners/` lives while it does
    /// (from its first job on: a replica that never ran a job writes nothing).
    let replica = UUID().uuidString
    let runnerTTL: Int64
    /// The lease the runner key lives under, granted once (again after it was lost).
    private let runnerLease = Mutex<Task<LeaseID, any Error>?>(nil)

    /// How many finished jobs are kept, and for how long.
    public struct Retention: Sendable {
        public var count: Int
        public var age: Duration

        public init(count: Int = 1000, age: Duration = .seconds(30 * 86_400)) {
            self.count = count
            self.age = age
        }
    }

    init(
        store: any KeyValueStore, registry: NodeRegistry, links: AgentLinks, checks: CheckService? = nil, retention: Retention = Retention(),
        runnerTTL: Int64 = 10, logger: Logger
    ) {
        self.runnerTTL = runnerTTL
        self.store = store
        self.registry = registry
        self.links = links
        self.checks = checks
        self.retention = retention
        self.logger = logger
        // A node that stops sending heartbeats mid-run is not waited on until the timeout.
        registry.liveness.onSilence { [weak self] name in self?.silent(name) }
    }

    static let maxTimeout: Duration = .seconds(24 * 3600)
    static let maxRetries = 10
    /// Output kept per node and stream: two of them, escaped, must fit one agent message.
    static let maxOutputLimit = 1 << 20

    // MARK: Submitting

    /// Starts a job, or answers the job its idempotency key already started.
    ///
    /// - Parameters:
    ///   - onlyOn: selectors of the nodes the job may run on (the caller's run rules); nil for any.
    ///   - leaveOutOthers: drop the nodes outside `onlyOn` instead of refusing the job (schedules).
    public func submit(_ spec: JobSpec, onlyOn: [String]? = nil, leaveOutOthers: Bool = false) async throws -> JobInfo {
        try Self.validate(spec)
        if let key = spec.idempotencyKey, let existing = try await jobID(forKey: key) {
            // The job a key started is answered only to a caller who may read it.
            try await ensure(existing, within: onlyOn, action: "read")
            return try await job(existing)
        }
        let selector = try Selector(spec.selector)
        var nodes = try await registry.list(selector: selector).sorted { $0.name < $1.name }
        if let onlyOn {
            let allowed = try onlyOn.map { try Selector($0) }
            let outside = nodes.filter { node in !allowed.contains { $0.matches(labels: node.labels, name: node.name) } }
            if !outside.isEmpty, !leaveOutOthers {
                let names = outside.prefix(5).map(\.name).joined(separator: ", ") + (outside.count > 5 ? " and \(outside.count - 5) more" : "")
                let rules = onlyOn.isEmpty ? "no job run rule" : onlyOn.map(\.quoted).joined(separator: " or ")
                throw CapstanError(.forbidden, "the selector picks nodes your role may not run jobs on (only \(rules)): \(names)")
            }
            let left = Set(outside.map(\.name))
            nodes.removeAll { left.contains($0.name) }
        }
        if spec.onlyHealthy, let checks {
            let statuses = try await checks.statusesByNode(nodes)
            for index in nodes.indices { nodes[index].checks = statuses[nodes[index].name] ?? [:] }
        }
        guard !nodes.isEmpty else {
            throw CapstanError(.invalidArgument, "no node matches the selector \(spec.selector.isEmpty ? "(every node)" : spec.selector.quoted)")
        }
        let id = Self.newID()
        _ = try await runnerKey()
        let jobNodes = nodes.map { node -> JobNode in
            guard spec.onlyHealthy, !node.isHealthy else { return JobNode(name: node.name) }
            let critical = (node.checks ?? [:]).filter { $0.value == .critical }.keys.sorted()
            let why = node.status != .healthy ? "the node was \(node.status.rawValue)" : "check \(critical.joined(separator: ", ")) was critical"
            return JobNode(name: node.name, state: .skipped, error: "\(why) when the job started (--only-healthy)")
        }
        let info = JobInfo(id: id, spec: spec, state: .running, createdAt: Date(), nodes: jobNodes)
        var record = info
        record.nodes = []
        let value = try RecordCoding.encoder.encode(JobRecord(info: record, nodeNames: nodes.map(\.name), replica: replica))
        if let key = spec.idempotencyKey {
            // Two submissions with one key at once: one creates the job, the other gets it.
            let keyPath = StoreLayout.jobKey(key)
            let result = try await store.txn(
                TxnRequest(
                    compares: [Compare(key: keyPath, .version(0), .equal)],
                    success: [.put(key: keyPath, value: Data(id.utf8)), .put(key: StoreLayout.job(id), value: value)]))
            if !result.succeeded, let existing = try await jobID(forKey: key) { return try await job(existing) }
        } else {
            _ = try await store.put(StoreLayout.job(id), value)
        }
        let run = JobRun(info: info, links: links, store: store, replica: replica, logger: logger)
        active.withLock { $0[id] = run }
        logger.info("job started", metadata: ["job": "\(id)", "nodes": "\(nodes.count)", "command": "\(spec.commandLine)"])
        Task {
            await run.run()
            self.active.withLock { _ = $0.removeValue(forKey: id) }
            await self.prune()
        }
        return await run.info
    }

    private func jobID(forKey key: String) async throws -> String? {
        try await store.get(StoreLayout.jobKey(key)).map { String(decoding: $0.value, as: UTF8.self) }
    }

    /// Sortable by time: `YYYYMMDD-HHMMSS-` and 6 random hex digits.
    static func newID(now: Date = Date()) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return formatter.string(from: now) + "-" + String(format: "%06x", UInt32.random(in: 0...0xFF_FFFF))
    }

    static func validate(_ spec: JobSpec) throws(CapstanError) {
        guard !spec.command.isEmpty, !spec.command[0].trimmingCharacters(in: .whitespaces).isEmpty else {
            throw CapstanError(.invalidArgument, "the command is empty: give it after --, e.g. capstan job run -- uptime")
        }
        // `/bin/sh -c` takes one command line; several elements would be joined into one, so that
        // a later element could add commands of its own (`["echo a", "; rm ..."]`).
        if spec.shell, spec.command.count != 1 {
            throw CapstanError(
                .invalidArgument, "with shell, the command is exactly one element, the command line for /bin/sh -c; got \(spec.command.count)")
        }
        guard !spec.command.contains(where: { $0.contains("\0") }) else {
            throw CapstanError(.invalidArgument, "the command contains a NUL byte")
        }
        _ = try Selector(spec.selector)
        switch spec.batch {
        case .count(let count) where count < 1: throw CapstanError(.invalidArgument, "--batch must be at least 1 node (or 1%)")
        case .percent(let percent) where !(1...100).contains(percent):
            throw CapstanError(.invalidArgument, "--batch must be a percentage from 1% to 100%")
        default: break
        }
        switch spec.maxFailures {
        case .count(let count) where count < 0: throw CapstanError(.invalidArgument, "--max-failures cannot be negative")
        case .percent(let percent) where !(0...100).contains(percent):
            throw CapstanError(.invalidArgument, "--max-failures \(percent)% is not a percentage from 0% to 100%")
        default: break
        }
        guard spec.timeoutMilliseconds > 0, Duration.milliseconds(spec.timeoutMilliseconds) <= maxTimeout else {
            throw CapstanError(.invalidArgument, "--timeout must be more than 0 and at most 24h")
        }
        guard (0...maxRetries).contains(spec.retries) else {
            throw CapstanError(.invalidArgument, "--retries must be from 0 to \(maxRetries)")
        }
        guard (0...maxOutputLimit).contains(spec.outputLimitBytes) else {
            throw CapstanError(.invalidArgument, "the output limit must be from 0 to 1 MiB")
        }
        if let key = spec.idempotencyKey {
            guard !key.isEmpty, key.count <= 200, key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.:".contains($0)) })
            else {
                throw CapstanError(
                    .invalidArgument, "--idempotency-key must be 1 to 200 characters of letters, digits, -, _, . and :")
            }
        }
    }

    // MARK: Reading

    public func job(_ id: String) async throws -> JobInfo {
        if let run = active.withLock({ $0[id] }) {
            let info = await run.info
            // A finished run leaves `active` a moment after its results are stored, and may be
            // pruned meanwhile: then it is gone.
            if info.finishedAt != nil, try await store.get(StoreLayout.job(id)) == nil { throw Self.notFound(id) }
            return info
        }
        guard let kv = try await store.get(StoreLayout.job(id)) else { throw Self.notFound(id) }
        let record = try RecordCoding.decoder.decode(JobRecord.self, from: kv.value)
        var info = record.info
        var results: [String: JobNode] = [:]
        for kv in try await store.range(RangeRequest(.prefix(StoreLayout.jobNodesPrefix(id)))).kvs {
            if let node = try? RecordCoding.decoder.decode(JobNode.self, from: kv.value) { results[node.name] = node }
        }
        info.nodes = record.nodeNames.map { results[$0] ?? JobNode(name: $0) }
        return info
    }

    /// Every job, newest first.
    /// - Parameter within: selectors of the nodes the caller's job rules reach: only jobs all of
    ///   whose nodes match one are listed. nil lists every job.
    public func list(within selectors: [String]? = nil) async throws -> JobList {
        let kvs = try await store.range(RangeRequest(.prefix(StoreLayout.jobs))).kvs
        var allowed: Set<String>?
        if let selectors { allowed = try await nodeNames(matching: selectors) }
        var items: [JobSummary] = []
        for kv in kvs.reversed() {
            let id = String(kv.key.dropFirst(StoreLayout.jobs.count))
            if let run = active.withLock({ $0[id] }) {
                let info = await run.info
                if let allowed, !info.nodes.allSatisfy({ allowed.contains($0.name) }) { continue }
                items.append(info.summary)
            } else if let record = try? RecordCoding.decoder.decode(JobRecord.self, from: kv.value) {
                if let allowed, !record.nodeNames.allSatisfy({ allowed.contains($0) }) { continue }
                var summary = record.info.summary
                summary.total = record.nodeNames.count
                summary.succeeded = record.succeeded
                summary.failed = record.failed
                items.append(summary)
            }
        }
        return JobList(items: items)
    }

    /// The names of the nodes one of `selectors` picks now.
    func nodeNames(matching selectors: [String]) async throws -> Set<String> {
        var names = Set<String>()
        for text in selectors {
            for node in try await registry.list(selector: try Selector(text)) { names.insert(node.name) }
        }
        return names
    }

    /// Throws `forbidden` unless every node of the job matches one of `selectors` (nil: any node).
    public func ensure(_ id: String, within selectors: [String]?, action: String) async throws {
        guard let selectors else { return }
        let info = try await job(id)
        let allowed = try await nodeNames(matching: selectors)
        let outside = info.nodes.map(\.name).filter { !allowed.contains($0) }
        guard outside.isEmpty else {
            throw CapstanError(
                .forbidden, "job \(id) ran on nodes your role's job rules do not reach, so you may not \(action) it: \(outside.prefix(5).joined(separator: ", "))")
        }
    }

    /// The job's events (see `JobRun.subscribe`); for a job not running here, its stored state.
    public func events(_ id: String) async throws -> AsyncStream<JobEvent> {
        if let run = active.withLock({ $0[id] }) { return await run.subscribe() }
        let info = try await job(id)
        if info.state == .running, try await runsElsewhere(id) {
            throw CapstanError(.conflict, "job \(id) runs on another server replica; follow it there")
        }
        return AsyncStream { continuation in
            for node in info.nodes { continuation.yield(JobEvent(type: .node, node: node)) }
            continuation.yield(JobEvent(type: .done, job: info.summary))
            continuation.finish()
        }
    }

    /// Returns once the job has finished and its results are stored.
    public func waitUntilFinished(_ id: String) async throws -> JobInfo {
        if let run = active.withLock({ $0[id] }) { await run.finished() }
        return try await job(id)
    }

    /// Whether a running job's replica is alive (its runner key is there).
    private func runsElsewhere(_ id: String) async throws -> Bool {
        guard let kv = try await store.get(StoreLayout.job(id)), let record = try? RecordCoding.decoder.decode(JobRecord.self, from: kv.value)
        else { return false }
        guard record.replica != replica else { return false }
        return try await store.get(StoreLayout.jobRunner(record.replica)) != nil
    }

    public func cancel(_ id: String) async throws -> JobInfo {
        guard let run = active.withLock({ $0[id] }) else {
            let info = try await job(id)
            guard info.state == .running else {
                throw CapstanError(.conflict, "job \(id) already finished (\(info.state.rawValue)); there is nothing to cancel")
            }
            throw CapstanError(.conflict, "job \(id) runs on another server replica; cancel it there")
        }
        await run.cancel()
        return await run.info
    }

    // MARK: From agents

    // Awaited by the connection's reader, so that each agent's messages (output, then the
    // result, then the disconnect) reach the job in the order they were sent.

    func received(_ result: AgentMessage.JobResult, from name: String) async {
        guard let run = active.withLock({ $0[result.id] }) else { return }
        await run.received(result, from: name)
    }

    func received(_ output: AgentMessage.JobOutput, from name: String) async {
        guard let run = active.withLock({ $0[output.id] }) else { return }
        await run.received(output, from: name)
    }

    func silent(_ name: String) {
        for run in active.withLock({ Array($0.values) }) {
            Task { await run.silent(name) }
        }
    }

    func disconnected(_ name: String, connection: UInt64) async {
        for run in active.withLock({ Array($0.values) }) {
            await run.disconnected(name, connection: connection)
        }
    }

    // MARK: Upkeep

    /// Keeps this replica's runner key alive, closes jobs whose replica stopped, and prunes the
    /// history, until cancelled.
    func runUpkeep() async throws {
        var sinceRecovery = Duration.seconds(3600)
        var sincePrune = Duration.seconds(3600)
        let tick = Duration.seconds(max(1, runnerTTL / 3))
        while true {
            do {
                if let lease = try await runnerLease.withLock({ $0 })?.value {
                    do {
                        _ = try await store.keepAlive(lease)
                    } catch let error as StoreError where error.code == .leaseNotFound {
                        // Lost (the store was away longer than the lease): a new one, a new key.
                        runnerLease.withLock { $0 = nil }
                        _ = try await runnerKey()
                    }
                }
                if sinceRecovery >= .seconds(runnerTTL) {
                    sinceRecovery = .zero
                    try await recoverInterrupted()
                }
                if sincePrune >= .seconds(600) {
                    sincePrune = .zero
                    await prune()
                }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("job upkeep failed", metadata: ["error": "\(error)"])
            }
            try await Task.sleep(for: tick)
            sinceRecovery += tick
            sincePrune += tick
        }
    }

    /// Puts this replica's runner key under its lease, once; answers the lease.
    private func runnerKey() async throws -> LeaseID {
        let task = runnerLease.withLock { current -> Task<LeaseID, any Error> in
            if let current { return current }
            let store = self.store
            let (key, ttl) = (StoreLayout.jobRunner(replica), runnerTTL)
            let task = Task {
                let lease = try await store.grantLease(ttl: ttl)
                _ = try await store.put(key, Data(), lease: lease.id)
                return lease.id
            }
            current = task
            return task
        }
        do {
            return try await task.value
        } catch {
            runnerLease.withLock { $0 = nil }
            throw error
        }
    }

    /// Marks jobs whose replica stopped while they ran (its runner key expired): their
    /// unfinished nodes are unreachable, and the job failed.
    func recoverInterrupted() async throws {
        for kv in try await store.range(RangeRequest(.prefix(StoreLayout.jobs))).kvs {
            guard var record = try? RecordCoding.decoder.decode(JobRecord.self, from: kv.value), record.info.state == .running,
                record.replica != replica, try await store.get(StoreLayout.jobRunner(record.replica)) == nil
            else {
                continue
            }
            let id = record.info.id
            guard active.withLock({ $0[id] == nil }) else { continue }
            let info = try await job(id)
            let unfinished = info.nodes.filter { !$0.state.isFinished }
            for chunk in stride(from: 0, to: unfinished.count, by: 100).map({ Array(unfinished[$0..<min($0 + 100, unfinished.count)]) }) {
                _ = try await store.txn(
                    TxnRequest(
                        success: try chunk.map { node in
                            var node = node
                            node.state = .unreachable
                            node.error = "the server stopped while the job ran"
                            return .put(key: StoreLayout.jobNode(id, node: node.name), value: try RecordCoding.encoder.encode(node))
                        }))
            }
            record.info.state = .failed
            record.info.reason = "the server stopped while the job ran"
            record.info.finishedAt = Date()
            _ = try await store.put(kv.key, try RecordCoding.encoder.encode(record))
            logger.warning("job interrupted by a server stop", metadata: ["job": "\(id)"])
        }
    }

    /// Removes finished jobs past the retention count or age, oldest first.
    func prune(now: Date = Date()) async {
        do {
            let kvs = try await store.range(RangeRequest(.prefix(StoreLayout.jobs))).kvs
            var finished: [(id: String, createdAt: Date)] = []
            for kv in kvs {
                guard let record = try? RecordCoding.decoder.decode(JobRecord.self, from: kv.value), record.info.state.isFinished else {
                    continue
                }
                finished.append((record.info.id, record.info.createdAt))
            }
            // Oldest first: ids sort by their second only (a random part follows).
            finished.sort { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
            let ageLimit = now.addingTimeInterval(-Double(retention.age.components.seconds))
            let excess = max(0, finished.count - retention.count)
            for (position, job) in finished.enumerated() where position < excess || job.createdAt < ageLimit {
                try await remove(job.id)
            }
        } catch {
            logger.warning("could not prune the job history", metadata: ["error": "\(error)"])
        }
    }

    private func remove(_ id: String) async throws {
        var operations: [TxnOp] = [.delete(.key(StoreLayout.job(id))), .delete(.prefix(StoreLayout.jobNodesPrefix(id)))]
        if let kv = try await store.get(StoreLayout.job(id)), let record = try? RecordCoding.decoder.decode(JobRecord.self, from: kv.value),
            let key = record.info.spec.idempotencyKey
        {
            operations.append(.delete(.key(StoreLayout.jobKey(key))))
        }
        _ = try await store.txn(TxnRequest(success: operations))
    }

    static func notFound(_ id: String) -> CapstanError {
        CapstanError(.notFound, "job \(id.quoted) not found")
    }
}
