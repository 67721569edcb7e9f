import CapstanCore
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Runs job commands on the node: each in a process group of its own, its output sent as it
/// comes and kept up to the job's limit, the whole group killed at the timeout or on cancel.
final class JobExecutor: Sendable {
    let policy: ExecPolicy
    let logger: Logger
    /// Runs by job id, and job ids cancelled before their command started.
    private let running = Mutex<(children: [String: ChildRun], cancelled: Set<String>)>(([:], []))

    init(policy: ExecPolicy, logger: Logger) {
        self.policy = policy
        self.logger = logger
    }

    /// Runs `job` and answers its result; `output` gets each piece of output as it comes.
    func run(_ job: AgentMessage.JobStart, output: @escaping @Sendable (JobEvent.Stream, String) async -> Void) async
        -> AgentMessage.JobResult
    {
        let started = Date()
        let launch: Launch
        switch self.launch(job) {
        case .success(let found):
            launch = found
        case .failure(.refused(let refusal)):
            logger.warning("job refused", metadata: ["job": "\(job.id)", "reason": "\(refusal)"])
            return Self.unstarted(job, at: started, .refused, error: refusal)
        case .failure(.failed(let failure)):
            return Self.unstarted(job, at: started, .failed, error: failure)
        }
        let kept = (stdout: CappedOutput(limit: job.outputLimitBytes), stderr: CappedOutput(limit: job.outputLimitBytes))
        let (chunks, sink) = AsyncStream.makeStream(of: (JobEvent.Stream, [UInt8]).self)
        let child: ChildRun
        do {
            child = try ChildRun.start(launch) { stream, bytes in sink.yield((stream, bytes)) } ended: { sink.finish() }
        } catch {
            return Self.unstarted(job, at: started, .failed, error: "cannot start \(launch.executable.quoted): \(error)")
        }
        register(child, for: job.id)
        defer { unregister(child, for: job.id) }
        logger.info("job started", metadata: ["job": "\(job.id)", "attempt": "\(job.attempt)", "pid": "\(child.pid)"])
        let forwarding = Task { await Self.forward(chunks, keeping: kept, to: output) }
        let timeout = Duration.milliseconds(job.timeoutMilliseconds)
        let timedOut = await Self.exitOrKill(child, after: timeout)
        await child.exited()
        // The output ends when every holder of the pipes has closed them; one that escaped the
        // process group may never do so, so it gets a moment, not forever.
        _ = await child.outputEnded(within: .seconds(1))
        sink.finish()
        await forwarding.value
        let result = Self.ended(job, child: child, kept: kept, timedOut: timedOut ? timeout : nil, startedAt: started)
        logger.info("job ended", metadata: ["job": "\(job.id)", "outcome": "\(result.outcome.rawValue)"])
        return result
    }

    /// What `job` starts, or why it does not start.
    private func launch(_ job: AgentMessage.JobStart) -> Result<Launch, LaunchFailure> {
        // `/bin/sh -c` takes one command line: joining several elements would run what a later
        // one says (`["echo a", "; rm ..."]`). The server refuses such jobs; so does the agent.
        if job.shell, job.command.count != 1 {
            return .failure(.refused("a shell command is exactly one argv element, the command line (got \(job.command.count))"))
        }
        return policy.launch(job.command, shell: job.shell)
    }

    /// Keeps `child` as the run of job `id`; a cancel that came while it started takes effect now.
    private func register(_ child: ChildRun, for id: String) {
        let cancelledEarly = running.withLock { state -> Bool in
            state.children[id] = child
            return state.cancelled.remove(id) != nil
        }
        // A job whose task was cancelled (its connection ended) while it started dies at once.
        if cancelledEarly || Task.isCancelled { child.cancel() }
    }

    private func unregister(_ child: ChildRun, for id: String) {
        running.withLock { state in
            if state.children[id] === child { state.children.removeValue(forKey: id) }
        }
    }

    /// Forwards the output in order, only as much of it as is kept, never splitting a character.
    private static func forward(
        _ chunks: AsyncStream<(JobEvent.Stream, [UInt8])>, keeping kept: (stdout: CappedOutput, stderr: CappedOutput),
        to output: @escaping @Sendable (JobEvent.Stream, String) async -> Void
    ) async {
        var pending: [JobEvent.Stream: [UInt8]] = [:]
        for await (stream, bytes) in chunks {
            let accepted = (stream == .stdout ? kept.stdout : kept.stderr).append(bytes)
            guard !accepted.isEmpty else { continue }
            var text = pending[stream, default: []] + accepted
            pending[stream] = UTF8Boundary.splitIncompleteTail(&text)
            if !text.isEmpty { await output(stream, String(decoding: text, as: UTF8.self)) }
        }
    }

    /// Waits for `child` to exit, killing its process group at `timeout`; answers whether it did.
    private static func exitOrKill(_ child: ChildRun, after timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await child.exited()
                return false
            }
            group.addTask {
                do {
                    try await Task.sleep(for: timeout)
                    return true
                } catch {
                    return false
                }
            }
            let first = await group.next() ?? false
            if first { child.killGroup() }
            group.cancelAll()
            return first
        }
    }

    /// The result of a job that did not start.
    private static func unstarted(
        _ job: AgentMessage.JobStart, at started: Date, _ outcome: AgentMessage.JobResult.Outcome, error: String
    ) -> AgentMessage.JobResult {
        AgentMessage.JobResult(
            id: job.id, attempt: job.attempt, outcome: outcome, exitCode: nil, stdout: "", stderr: "", stdoutTruncated: false,
            stderrTruncated: false, startedAt: started, endedAt: Date(), error: error)
    }

    /// The result of a job whose command ran and ended (killed at `timedOut` when that is set).
    private static func ended(
        _ job: AgentMessage.JobStart, child: ChildRun, kept: (stdout: CappedOutput, stderr: CappedOutput), timedOut: Duration?,
        startedAt started: Date
    ) -> AgentMessage.JobResult {
        let status = child.status
        let outcome: AgentMessage.JobResult.Outcome =
            child.wasCancelled ? .cancelled : timedOut != nil ? .timedOut : status.exitCode == 0 ? .succeeded : .failed
        let error: String? =
            switch outcome {
            case .cancelled: "cancelled"
            case .timedOut: "timed out after \(timedOut ?? .zero); the process group was killed"
            case .failed: status.signal.map { "killed by signal \($0)" } ?? "exit status \(status.exitCode ?? -1)"
            default: nil
            }
        return AgentMessage.JobResult(
            id: job.id, attempt: job.attempt, outcome: outcome, exitCode: status.exitCode, stdout: kept.stdout.text,
            stderr: kept.stderr.text, stdoutTruncated: kept.stdout.truncated, stderrTruncated: kept.stderr.truncated, startedAt: started,
            endedAt: Date(), error: error)
    }

    /// Kills the process group of a running job; its result says `cancelled`.
    func cancel(_ id: String) {
        let child = running.withLock { state -> ChildRun? in
            if let child = state.children[id] { return child }
            state.cancelled.insert(id)
            return nil
        }
        child?.cancel()
    }

    /// Kills every running job's process group (the connection ended, or the agent stops).
    func cancelAll() {
        for child in running.withLock({ Array($0.children.values) }) { child.cancel() }
    }
}

/// The first `limit` bytes of a stream; what comes after is counted as cut.
final class CappedOutput: Sendable {
    private let state = Mutex<(bytes: [UInt8], truncated: Bool)>(([], false))
    let limit: Int

    init(limit: Int) {
        self.limit = max(0, limit)
    }

    /// Keeps what fits; answers the part kept.
    func append(_ bytes: [UInt8]) -> ArraySlice<UInt8> {
        state.withLock { state in
            let room = limit - state.bytes.count
            if bytes.count > room { state.truncated = true }
            let taken = bytes.prefix(max(0, room))
            state.bytes += taken
            return taken
        }
    }

    var text: String { state.withLock { String(decoding: $0.bytes, as: UTF8.self) } }
    var truncated: Bool { state.withLock { $0.truncated } }
}

enum UTF8Boundary {
    /// Removes from `bytes` a UTF-8 sequence cut short at its end and answers it, so that text
    /// sent in pieces never splits a character.
    static func splitIncompleteTail(_ bytes: inout [UInt8]) -> [UInt8] {
        // A sequence is at most 4 bytes: look back that far for its lead byte.
        var index = bytes.count - 1
        while index >= 0, index >= bytes.count - 4 {
            let byte = bytes[index]
            if byte & 0b1100_0000 != 0b1000_0000 {
                let length = byte >= 0b1111_0000 ? 4 : byte >= 0b1110_0000 ? 3 : byte >= 0b1100_0000 ? 2 : 1
                guard bytes.count - index < length else { return [] }
                let tail = Array(bytes[index...])
                bytes.removeSubrange(index...)
                return tail
            }
            index -= 1
        }
        return []
    }
}

/// A child process in a process group of its own (Foundation starts it so), with its stdout and
/// stderr each read on a thread of its own with read(2).
final class ChildRun: Sendable {
    struct Status: Sendable {
        var exitCode: Int32?
        var signal: Int32?
    }

    private let process: Process
    private let state = Mutex<State>(State())
    let pid: Int32

    private struct State {
        var status: Status?
        var exitWaiters: [CheckedContinuation<Void, Never>] = []
        var openStreams = 2
        var outputWaiters: [CheckedContinuation<Void, Never>] = []
        var cancelled = false
    }

    private init(process: Process) {
        self.process = process
        self.pid = process.processIdentifier
    }

    /// Starts `launch`'s executable itself (no launcher that might read its arguments); `output`
    /// gets every read, `ended` is called once both streams are closed.
    static func start(
        _ launch: Launch, output: @escaping @Sendable (JobEvent.Stream, [UInt8]) -> Void, ended: @escaping @Sendable () -> Void
    ) throws -> ChildRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: launch.executable)
        process.arguments = launch.arguments
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        let box = Mutex<ChildRun?>(nil)
        process.terminationHandler = { process in
            let status =
                process.terminationReason == .uncaughtSignal
                ? Status(exitCode: nil, signal: process.terminationStatus) : Status(exitCode: process.terminationStatus, signal: nil)
            box.withLock { $0 }?.exited(with: status)
        }
        try process.run()
        let child = ChildRun(process: process)
        box.withLock { $0 = child }
        // The process may have ended before the handler could find the child.
        if !process.isRunning, child.state.withLock({ $0.status == nil }) {
            let status =
                process.terminationReason == .uncaughtSignal
                ? Status(exitCode: nil, signal: process.terminationStatus) : Status(exitCode: process.terminationStatus, signal: nil)
            child.exited(with: status)
        }
        for (stream, pipe) in [(JobEvent.Stream.stdout, stdout), (.stderr, stderr)] {
            let descriptor = pipe.fileHandleForReading.fileDescriptor
            Thread {
                var buffer = [UInt8](repeating: 0, count: 16 * 1024)
                while true {
                    let count = read(descriptor, &buffer, buffer.count)
                    if count < 0, errno == EINTR { continue }
                    if count <= 0 { break }
                    output(stream, Array(buffer[0..<count]))
                }
                if child.streamClosed() { ended() }
            }.start()
        }
        return child
    }

    private func exited(with status: Status) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard state.status == nil else { return [] }
            state.status = status
            defer { state.exitWaiters = [] }
            return state.exitWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Answers whether that was the last open stream.
    private func streamClosed() -> Bool {
        let (last, waiters) = state.withLock { state -> (Bool, [CheckedContinuation<Void, Never>]) in
            state.openStreams -= 1
            guard state.openStreams == 0 else { return (false, []) }
            defer { state.outputWaiters = [] }
            return (true, state.outputWaiters)
        }
        for waiter in waiters { waiter.resume() }
        return last
    }

    /// Returns once the process has exited.
    func exited() async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Bool in
                if state.status != nil { return true }
                state.exitWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Whether both output streams closed within `limit`.
    func outputEnded(within limit: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let done = self.state.withLock { state -> Bool in
                        if state.openStreams == 0 { return true }
                        state.outputWaiters.append(continuation)
                        return false
                    }
                    if done { continuation.resume() }
                }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: limit)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            if !first { closeOutputWaiters() }
            return first
        }
    }

    /// Releases the output waiters without the streams having closed (the time is up).
    private func closeOutputWaiters() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            defer { state.outputWaiters = [] }
            return state.outputWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    var status: Status { state.withLock { $0.status } ?? Status(exitCode: nil, signal: nil) }
    var wasCancelled: Bool { state.withLock { $0.cancelled } }

    /// Kills the whole process group with SIGKILL.
    func killGroup() {
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
    }

    func cancel() {
        state.withLock { $0.cancelled = true }
        killGroup()
    }
}
