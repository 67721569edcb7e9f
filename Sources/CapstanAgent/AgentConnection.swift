import CapstanCore
import Foundation
import HummingbirdWSClient
import Logging
import Synchronization

/// One WebSocket to the server, from the hello to its end: the handshake, then the heartbeats,
/// host metrics and everything the server sends, while it lasts. What outlives a connection
/// (the template worker, the checks, the job executor) is handed in; what belongs to it (the
/// writer, the timers, the jobs it started) runs in its task group and ends with it.
struct AgentConnection: Sendable {
    let identity: AgentIdentity
    let labels: [String: String]
    let worker: TemplateWorker
    let executor: JobExecutor
    let sampler: MetricsSource
    let checks: CheckRunner
    let logger: Logger
    let events: @Sendable (String) -> Void
    /// Set once the server welcomed the connection.
    let welcomed: Welcomed

    /// What the welcome asks of this connection.
    struct Terms {
        var heartbeat: Duration
        var metrics: Duration
    }

    /// Serves the connection until the server closes it, it breaks, or the task is cancelled.
    func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        let facts = HostFacts.collect()
        var messages = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
        guard let terms = try await handshake(facts: facts, messages: &messages, outbound: outbound) else { return }
        welcomed.set()
        events("connected")
        logger.info("connected", metadata: ["node": "\(identity.name)", "heartbeat.ms": "\(terms.heartbeat.milliseconds)"])
        // Every message goes out through one writer, in order: a message longer than a frame is
        // written as several, and another task's frame must not come between.
        let (outgoing, sender) = AsyncStream.makeStream(of: String.self)
        let send: @Sendable (AgentMessage) -> Void = { message in
            if let text = try? AgentMessage.encode(message) { sender.yield(text) }
        }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                for await text in outgoing { try? await outbound.writeTextMessage(text) }
            }
            group.addTask { await heartbeats(every: terms.heartbeat, send: send) }
            group.addTask { await metrics(every: terms.metrics, send: send) }
            await checks.connected { result in
                send(AgentMessage(type: .check, check: result))
                events("check \(result.check) \(result.status.rawValue)")
            }
            await worker.connected(facts: facts) { report in
                send(AgentMessage(type: .report, report: report))
                events("template \(report.template) \(report.state.rawValue)")
            }
            defer {
                // Commands started over this connection cannot report any more: a job's task
                // that has not registered its command yet sees itself cancelled, the others'
                // commands are killed.
                group.cancelAll()
                executor.cancelAll()
                sender.finish()
            }
            while let message = try await messages.next() {
                guard case .text(let text) = message, let decoded = try? AgentMessage.decode(text) else { continue }
                await handle(decoded, send: send, group: &group)
            }
        }
    }

    /// Says hello (with the digest of the set this node has) and reads the welcome; nil when
    /// the server refused the connection instead.
    private func handshake(
        facts: NodeFacts, messages: inout WebSocketInboundMessageStream.AsyncIterator, outbound: WebSocketOutboundWriter
    ) async throws -> Terms? {
        let hello = AgentMessage(type: .hello, hello: .init(facts: facts, labels: labels, templatesDigest: worker.storedDigest()))
        try await outbound.writeTextMessage(AgentMessage.encode(hello))
        guard case .text(let text)? = try await messages.next() else { return nil }
        let welcome = try AgentMessage.decode(text)
        guard welcome.type == .welcome, let interval = welcome.welcome?.heartbeatIntervalMilliseconds else {
            logger.error("the server refused the connection", metadata: ["reason": "\(welcome.error ?? "no welcome")"])
            return nil
        }
        return Terms(heartbeat: .milliseconds(interval), metrics: .milliseconds(welcome.welcome?.metricsIntervalMilliseconds ?? 15_000))
    }

    /// Acts on one message from the server. Template sets go to the worker, which applies them
    /// beside the connection and outlives it (a report that finds the connection gone is sent
    /// again after the next connect); jobs run in the connection's group and die with it: the
    /// server retries or marks the node unreachable, and no retry runs beside a first try.
    private func handle(_ message: AgentMessage, send: @escaping @Sendable (AgentMessage) -> Void, group: inout ThrowingDiscardingTaskGroup<any Error>) async {
        switch message.type {
        case .templates:
            guard let set = message.templates else { return }
            worker.submit(set)
            await checks.update(set.checks ?? [])
        case .job:
            guard let job = message.job else { return }
            let executor = self.executor
            let events = self.events
            group.addTask {
                let result = await executor.run(job) { stream, text in
                    send(AgentMessage(type: .jobOutput, jobOutput: .init(id: job.id, attempt: job.attempt, stream: stream, text: text)))
                }
                send(AgentMessage(type: .jobResult, jobResult: result))
                events("job \(job.id) \(result.outcome.rawValue)")
            }
        case .jobCancel:
            if let id = message.jobCancel?.id { executor.cancel(id) }
        case .error:
            logger.error("the server closes the connection", metadata: ["reason": "\(message.error ?? "")"])
        default:
            return
        }
    }

    /// A heartbeat at once, then one per interval, until cancelled.
    private func heartbeats(every interval: Duration, send: @Sendable (AgentMessage) -> Void) async {
        var sequence: Int64 = 0
        repeat {
            sequence += 1
            send(AgentMessage(type: .heartbeat, heartbeat: .init(sequence: sequence)))
        } while (try? await Task.sleep(for: interval)) != nil
    }

    /// A host metrics sample at once, then one per interval, until cancelled. Reading /proc takes
    /// a moment; a failed read is logged and skipped.
    private func metrics(every interval: Duration, send: @Sendable (AgentMessage) -> Void) async {
        repeat {
            do {
                send(AgentMessage(type: .metrics, metrics: try sampler.sample()))
            } catch {
                logger.warning("could not sample host metrics", metadata: ["error": "\(error)"])
            }
        } while (try? await Task.sleep(for: interval)) != nil
    }
}

/// Set once the server welcomed the connection.
final class Welcomed: Sendable {
    private let flag = Mutex(false)
    func set() { flag.withLock { $0 = true } }
    var value: Bool { flag.withLock { $0 } }
}
