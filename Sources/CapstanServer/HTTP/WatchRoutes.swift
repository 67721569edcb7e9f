import AsyncAlgorithms
import CapstanCore
import CapstanStore
import Foundation
import HTTPTypes
import Hummingbird
import ServiceLifecycle

/// `GET /v1/watch`: changes under a prefix as Server-Sent Events, resumable with `Last-Event-ID`.
struct WatchRoutes {
    typealias Context = CapstanRequestContext

    let service: ConfigService
    let metrics: ServerMetrics
    /// For clients that name themselves (`X-Capstan-Client`): the candidates they are members for.
    let rollouts: RolloutService
    /// A comment line this often keeps proxies and clients from timing the stream out.
    var heartbeat: Duration = .seconds(15)

    private enum Item: Sendable {
        case events([ConfigEvent])
        case heartbeat
        case failed(Problem)
    }

    func register(on router: GuardedRouter) {
        router.get("v1/watch", access: .caller(.config, .read, .query("prefix"))) { request, context in try await watch(request, lifetime: context.callerLifetime) }
    }

    private func watch(_ request: Request, lifetime: CallerLifetime?) async throws -> Response {
        let prefix = try KeyPrefix(HTTPHelpers.string(request, "prefix") ?? "")
        let includeContent = HTTPHelpers.string(request, "content") != "false"
        let status = try await service.status()
        // Resolve "now" before answering, so nothing written after the response head is missed.
        let start = try Self.startRevision(request, status: status)
        let client = try request.headers[.capstanClient].map { try ClientIdentity(header: $0) }
        let events: any AsyncSequence<[ConfigEvent], any Error> & Sendable =
            if let client { rollouts.watch(prefix, from: start, for: client) } else { service.watch(prefix, from: start) }
        let metrics = self.metrics
        let heartbeat = self.heartbeat
        let headers: HTTPFields = [
            .contentType: "text/event-stream",
            .cacheControl: "no-cache",
            .capstanRevision: String(status.revision),
        ]
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                metrics.sseClients.increment()
                defer { metrics.sseClients.decrement() }
                try await writer.write(ByteBuffer(string: ": watching \(prefix.rawValue) from revision \(start)\n\n"))
                try await Self.relay(events, includeContent: includeContent, heartbeat: heartbeat, lifetime: lifetime, to: &writer)
                try await writer.finish(nil)
            })
    }

    /// The first revision to send: after `Last-Event-ID`, else `from`, else the next write.
    /// - Throws: `compacted` when that revision is no longer kept.
    private static func startRevision(_ request: Request, status: StoreStatus) throws -> Int64 {
        var from = try HTTPHelpers.int64(request, "from")
        if let lastEventID = request.headers[.lastEventID] {
            guard let last = Int64(lastEventID.trimmingCharacters(in: CharacterSet.whitespaces)), last >= 0, last < Int64.max
            else {
                throw CapstanError(.invalidArgument, "Last-Event-ID must be a revision, got \(lastEventID)")
            }
            from = last + 1
        }
        let start = from ?? status.revision + 1
        if start < status.compactRevision {
            throw StoreError(
                .compacted,
                "revision \(start) has been compacted; the oldest available is \(status.compactRevision): list the prefix, then watch from the listing's revision + 1",
                compactRevision: status.compactRevision)
        }
        return start
    }

    /// Writes the events as they come, with a heartbeat comment between. On shutdown the stream
    /// ends cleanly (the client resumes elsewhere with `Last-Event-ID`); a failed watch, or a
    /// caller that stops standing, ends it with an error event.
    private static func relay(
        _ events: some AsyncSequence<[ConfigEvent], any Error> & Sendable, includeContent: Bool, heartbeat: Duration,
        lifetime: CallerLifetime?, to writer: inout any ResponseBodyWriter
    ) async throws {
        let channel = AsyncChannel<Item>()
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        for try await batch in events {
                            await channel.send(.events(batch))
                        }
                    } catch {
                        await channel.send(.failed(ProblemMapping.problem(for: error)))
                    }
                    channel.finish()
                }
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: heartbeat)
                        await channel.send(.heartbeat)
                    }
                }
                if let lifetime {
                    group.addTask { await channel.send(.failed(ProblemMapping.problem(for: try await lifetime.end()))) }
                }
                defer { group.cancelAll() }
                for await item in channel {
                    // Nothing more once the caller stopped standing, whatever was already queued.
                    switch lifetime?.ended().map({ Item.failed(ProblemMapping.problem(for: $0)) }) ?? item {
                    case .events(let batch):
                        try await writer.write(ByteBuffer(string: try encode(batch, includeContent: includeContent)))
                    case .heartbeat:
                        try await writer.write(ByteBuffer(string: ": heartbeat\n\n"))
                    case .failed(let problem):
                        try await writer.write(try HTTPHelpers.errorEvent(problem))
                        return
                    }
                }
            }
        } onGracefulShutdown: {
            channel.finish()
        }
    }

    static func encode(_ batch: [ConfigEvent], includeContent: Bool) throws -> String {
        var text = ""
        for var event in batch {
            if !includeContent { event.content = nil }
            let data = String(decoding: try HTTPHelpers.encoder.encode(event), as: UTF8.self)
            text += "id: \(event.revision)\nevent: \(event.type.rawValue)\ndata: \(data)\n\n"
        }
        return text
    }
}
