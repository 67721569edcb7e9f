import CapstanCore
import CapstanStore
import Foundation
import Logging
import NIOCore

/// One job while it runs on this replica: rolls it out batch by batch, dispatches each node's
/// command on its agent's connection, waits for results (never past the timeout), retries
/// dropped connections, aborts past the failure threshold, and keeps the results in the store.
actor JobRun {
    private(set) var info: JobInfo
    private let links: AgentLinks
    private let store: any KeyValueStore
    private let logger: Logger
    private let replica: String
    /// How long past the command's timeout a result may take to arrive before the node counts
    /// as unreachable (the agent kills the command at the timeout and reports at once).
    static let resultGrace: Duration = .seconds(5)
    /// A retry after a dropped connection waits this long at most for the node to reconnect.
    static let reconnectWait: Duration = .seconds(10)
    static let retryBackoff: (initial: Duration, cap: Duration) = (.milliseconds(250), .seconds(10))

    private var index: [String: Int] = [:]
    private var subscribers: [UUID: AsyncStream<JobEvent>.Continuation] = [:]
    /// The attempt each running node waits on.
    private var waiting: [String: (attempt: Int, connection: UInt64, continuation: CheckedContinuation<Outcome, Never>)] = [:]
    private var cancelRequested = false
    /// Nodes whose result changed since the last store write.
    private var dirty: Set<String> = []
    private var flushing = false
    private var finishedWaiters: [CheckedContinuation<Void, Never>] = []
    /// Output of the running attempts so far, for subscribers that come in the middle.
    private var liveOutput: [String: [JobEvent.Stream: String]] = [:]

    enum Outcome {
        case result(AgentMessage.JobResult)
        /// The connection dropped: retried when retries are left.
        case connectionLost
        /// No result within the timeout and its grace.
        case silent
        /// The node missed its heartbeats during the run.
        case heartbeatsLapsed
    }

    init(info: JobInfo, links: AgentLinks, store: any KeyValueStore, replica: String, logger: Logger) {
        self.info = info
        self.replica = replica
        self.links = links
        self.store = store
        self.logger = logger
        for (position, node) in info.nodes.enumerated() { index[node.name] = position }
    }

    // MARK: Running

    func run() async {
        let spec = info.spec
        // Nodes settled at submission (skipped with --only-healthy) are stored like the others.
        dirty.formUnion(info.nodes.filter { $0.state != .pending }.map(\.name))
        let candidates = info.nodes.filter { $0.state == .pending }.map(\.name)
        let size = max(1, spec.batch?.nodes(of: candidates.count) ?? candidates.count)
        let threshold = spec.maxFailures?.nodes(of: info.nodes.count)
        var start = 0
        while start < candidates.count {
            if cancelRequested { break }
            let batch = Array(candidates[start..<min(start + size, candidates.count)])
            start += size
            await withTaskGroup(of: Void.self) { group in
                for name in batch { group.addTask { await self.runNode(name) } }
            }
            let failures = info.nodes.count(where: \.state.isFailure)
            if let threshold, failures > threshold, start < candidates.count {
                info.state = .aborted
                info.reason = "\(failures) nodes failed, more than --max-failures \(spec.maxFailures?.description ?? "")"
                logger.warning("job aborted", metadata: ["job": "\(info.id)", "failures": "\(failures)"])
                break
            }
        }
        // Whatever did not start: skipped after an abort, cancelled after a cancel.
        let state: JobNodeState = cancelRequested ? .cancelled : .skipped
        let why = cancelRequested ? "the job was cancelled before the node started" : "not started: \(info.reason ?? "the job aborted")"
        for name in candidates where info.nodes[index[name]!].state == .pending {
            // (The closure changes `info`: it must not read it.)
            update(name) { node in
                node.state = state
                node.error = why
            }
        }
        if info.state == .running {
            info.state =
                cancelRequested ? .cancelled : info.nodes.contains(where: \.state.isFailure) ? .failed : .succeeded
        }
        info.finishedAt = Date()
        await flush()
        await writeJob()
        logger.info("job finished", metadata: ["job": "\(info.id)", "state": "\(info.state.rawValue)"])
        publish(JobEvent(type: .done, job: info.summary))
        for subscriber in subscribers.values { subscriber.finish() }
        subscribers = [:]
        for waiter in finishedWaiters { waiter.resume() }
        finishedWaiters = []
    }

    /// Runs the command on one node, with retries after dropped connections.
    private func runNode(_ name: String) async {
        let spec = info.spec
        var attempt = 0
        while true {
            attempt += 1
            if cancelRequested {
                update(name) { node in
                    node.state = .cancelled
                    node.error = "the job was cancelled"
                }
                return
            }
            // A first attempt goes to the node as it is; a retry gives it a moment to come back.
            let link = attempt == 1 ? links.link(name) : await links.link(name, within: Self.reconnectWait)
            if cancelRequested {
                settle(name, .cancelled, "the job was cancelled")
                return
            }
            guard let link else {
                settle(name, .unreachable, attempt == 1 ? "the node is not connected" : "the node did not reconnect after its connection dropped")
                return
            }
            guard link.version >= 2 else {
                settle(name, .failed, "the node's agent speaks protocol \(link.version); jobs need protocol 2 (upgrade the agent)")
                return
            }
            update(name) { node in
                node.state = .running
                node.attempts = attempt
                node.startedAt = node.startedAt ?? Date()
                node.error = nil
            }
            let outcome = await dispatch(name, attempt: attempt, link: link)
            switch outcome {
            case .result(let result):
                update(name) { node in
                    node.state =
                        switch result.outcome {
                        case .succeeded: .succeeded
                        case .failed, .refused: .failed
                        case .timedOut: .timedOut
                        case .cancelled: .cancelled
                        }
                    node.exitCode = result.exitCode
                    node.stdout = result.stdout
                    node.stderr = result.stderr
                    node.stdoutTruncated = result.stdoutTruncated
                    node.stderrTruncated = result.stderrTruncated
                    node.endedAt = result.endedAt
                    node.durationMilliseconds = Int64((result.endedAt.timeIntervalSince(result.startedAt) * 1000).rounded())
                    node.error = result.outcome == .succeeded ? nil : result.error
                }
                return
            case .heartbeatsLapsed:
                settle(name, .unreachable, "the node stopped sending heartbeats during the run")
                return
            case .silent:
                settle(name, .unreachable, "no result within the timeout (\(Duration.milliseconds(spec.timeoutMilliseconds))) and \(Self.resultGrace) more")
                return
            case .connectionLost:
                guard attempt <= spec.retries, !cancelRequested else {
                    let state: JobNodeState = cancelRequested ? .cancelled : .unreachable
                    settle(name, state, "the connection to the node dropped during the run" + (attempt > 1 ? " (after \(attempt) attempts)" : ""))
                    return
                }
                let ceiling = min(Self.retryBackoff.cap, Self.retryBackoff.initial * (1 << min(attempt - 1, 16)))
                logger.info("retrying a node after its connection dropped", metadata: ["job": "\(info.id)", "node": "\(name)"])
                try? await Task.sleep(for: ceiling * Double.random(in: 0...1))
            }
        }
    }

    /// The encoded `job` message of each attempt number, shared by every node (the same bytes).
    private var startMessages: [Int: ByteBuffer] = [:]

    private func startMessage(attempt: Int) -> ByteBuffer? {
        if let message = startMessages[attempt] { return message }
        let spec = info.spec
        let start = AgentMessage.JobStart(
            id: info.id, attempt: attempt, command: spec.command, shell: spec.shell, timeoutMilliseconds: spec.timeoutMilliseconds,
            outputLimitBytes: spec.outputLimitBytes)
        guard let text = try? AgentMessage.encode(AgentMessage(type: .job, job: start)) else { return nil }
        startMessages[attempt] = ByteBuffer(string: text)
        return startMessages[attempt]
    }

    /// Sends one attempt and waits for its outcome.
    private func dispatch(_ name: String, attempt: Int, link: AgentLinks.Link) async -> Outcome {
        let spec = info.spec
        let message = startMessage(attempt: attempt)
        let limit = Duration.milliseconds(spec.timeoutMilliseconds) + Self.resultGrace
        let id = info.id
        let deadline = Task {
            try await Task.sleep(for: limit)
            self.resolve(name, attempt: attempt, .silent)
        }
        defer { deadline.cancel() }
        return await withCheckedContinuation { continuation in
            waiting[name] = (attempt, link.connection, continuation)
            guard let message, link.outbox.send(message) else {
                resolve(name, attempt: attempt, .connectionLost)
                return
            }
            logger.debug("job sent", metadata: ["job": "\(id)", "node": "\(name)", "attempt": "\(attempt)"])
        }
    }

    private func resolve(_ name: String, attempt: Int, _ outcome: Outcome) {
        guard let entry = waiting[name], entry.attempt == attempt else { return }
        waiting.removeValue(forKey: name)
        liveOutput.removeValue(forKey: name)
        entry.continuation.resume(returning: outcome)
    }

    // MARK: From agents

    func received(_ result: AgentMessage.JobResult, from name: String) {
        resolve(name, attempt: result.attempt, .result(result))
    }

    func received(_ output: AgentMessage.JobOutput, from name: String) {
        guard let entry = waiting[name], entry.attempt == output.attempt else { return }
        liveOutput[name, default: [:]][output.stream, default: ""] += output.text
        publish(JobEvent(type: .output, name: name, stream: output.stream, text: output.text))
    }

    func silent(_ name: String) {
        guard let entry = waiting[name] else { return }
        resolve(name, attempt: entry.attempt, .heartbeatsLapsed)
    }

    func disconnected(_ name: String, connection: UInt64) {
        guard let entry = waiting[name], entry.connection == connection else { return }
        resolve(name, attempt: entry.attempt, .connectionLost)
    }

    // MARK: Control

    /// Stops the job: nodes not started are cancelled, running commands are killed.
    func cancel() {
        guard info.state == .running, !cancelRequested else { return }
        cancelRequested = true
        info.reason = "cancelled"
        for name in waiting.keys {
            _ = links.send(AgentMessage(type: .jobCancel, jobCancel: .init(id: info.id)), to: name)
        }
    }

    /// The job's events: every node as it is now, then changes and output as they come, then
    /// `done`. A finished job gives its nodes and `done` at once.
    func subscribe() -> AsyncStream<JobEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: JobEvent.self, bufferingPolicy: .bufferingNewest(100_000))
        for node in info.nodes { continuation.yield(JobEvent(type: .node, node: node)) }
        for (name, streams) in liveOutput {
            for (stream, text) in streams.sorted(by: { $0.key.rawValue > $1.key.rawValue }) {
                continuation.yield(JobEvent(type: .output, name: name, stream: stream, text: text))
            }
        }
        if info.state.isFinished && info.finishedAt != nil {
            continuation.yield(JobEvent(type: .done, job: info.summary))
            continuation.finish()
            return stream
        }
        let id = UUID()
        subscribers[id] = continuation
        continuation.onTermination = { _ in Task { await self.unsubscribe(id) } }
        return stream
    }

    private func unsubscribe(_ id: UUID) {
        subscribers.removeValue(forKey: id)
    }

    /// Returns once the job has finished and its results are stored.
    func finished() async {
        if info.finishedAt != nil { return }
        await withCheckedContinuation { finishedWaiters.append($0) }
    }

    // MARK: State and storage

    private func update(_ name: String, _ change: (inout JobNode) -> Void) {
        guard let position = index[name] else { return }
        change(&info.nodes[position])
        publish(JobEvent(type: .node, node: info.nodes[position]))
        // Only settled states are stored: a running node lives in memory (after a server stop
        // it is unreachable), which halves the writes of a job.
        guard info.nodes[position].state.isFinished else { return }
        dirty.insert(name)
        if !flushing {
            flushing = true
            Task { await self.flushSoon() }
        }
    }

    /// Ends a node's part with `state` and why, now.
    private func settle(_ name: String, _ state: JobNodeState, _ error: String) {
        update(name) { node in
            node.state = state
            node.error = error
            node.endedAt = Date()
        }
    }

    private func publish(_ event: JobEvent) {
        for subscriber in subscribers.values { subscriber.yield(event) }
    }

    /// Results are written in batches: a job on 10,000 nodes costs a hundred transactions.
    private func flushSoon() async {
        try? await Task.sleep(for: .milliseconds(50))
        await flush()
        flushing = false
        if !dirty.isEmpty {
            flushing = true
            Task { await self.flushSoon() }
        }
    }

    /// The flush under way, if any: a flush waits for it, so that once a flush returns every
    /// result changed before it is in the store (the job's record is written after them).
    private var flushTask: Task<Void, Never>?

    private func flush() async {
        let previous = flushTask
        let task = Task {
            await previous?.value
            await self.writeDirty()
        }
        flushTask = task
        await task.value
    }

    private func writeDirty() async {
        // Batches of at most 100 results and about 512 KiB (etcd takes 1.5 MiB a request).
        var failed: [String] = []
        while !dirty.isEmpty {
            let all = dirty.sorted()
            dirty = []
            var batch: [(key: String, value: Data)] = []
            var names: [String] = []
            var bytes = 0
            for name in all {
                guard let position = index[name], let value = try? RecordCoding.encoder.encode(info.nodes[position]) else { continue }
                if !batch.isEmpty, batch.count == 100 || bytes + value.count > 512 * 1024 {
                    if !(await write(batch)) { failed += names }
                    (batch, names, bytes) = ([], [], 0)
                }
                batch.append((StoreLayout.jobNode(info.id, node: name), value))
                names.append(name)
                bytes += value.count
            }
            if !batch.isEmpty, !(await write(batch)) { failed += names }
        }
        // Kept for the next flush: a result is never dropped for a failed write.
        dirty.formUnion(failed)
    }

    private func write(_ batch: [(key: String, value: Data)]) async -> Bool {
        do {
            _ = try await store.txn(TxnRequest(success: batch.map { .put(key: $0.key, value: $0.value) }))
            return true
        } catch {
            logger.warning("could not store job results; retrying", metadata: ["job": "\(info.id)", "error": "\(error)"])
            return false
        }
    }

    /// Writes the job's record (without the nodes, which have keys of their own).
    func writeJob() async {
        var record = info
        record.nodes = []
        do {
            let stored = JobRecord(
                info: record, nodeNames: info.nodes.map(\.name), replica: replica, succeeded: info.nodes.count(where: { $0.state == .succeeded }),
                failed: info.nodes.count(where: \.state.isFailure))
            _ = try await store.put(StoreLayout.job(info.id), try RecordCoding.encoder.encode(stored))
        } catch {
            logger.warning("could not store the job", metadata: ["job": "\(info.id)", "error": "\(error)"])
        }
    }
}

/// A job as stored: its summary fields and the names of its nodes in order (each node's
/// result has a key of its own).
struct JobRecord: Codable, Sendable {
    var info: JobInfo
    var nodeNames: [String]
    /// The replica that runs the job.
    var replica: String
    /// Counted when the job finished, for listings.
    var succeeded = 0
    var failed = 0
}
