import AsyncAlgorithms
import CapstanCore
import CapstanStore
import Foundation
import Hummingbird
import ServiceLifecycle

/// `GET /ui/events?topics=nodes,templates`: one event stream per console page, saying which of
/// its topics changed (`event: changed`, `data: nodes`), at most every half second per topic, so
/// that the page's script redraws itself instead of polling. The stream follows the store; it
/// ends when the session's token stops working, and cleanly when the server stops.
struct ConsoleEvents {
    typealias Context = CapstanRequestContext

    let store: any KeyValueStore
    static let topics: [String: [String]] = [
        "nodes": [StoreLayout.nodes, StoreLayout.checkStatuses],
        "templates": [StoreLayout.templates, StoreLayout.templateStatuses],
        "jobs": [StoreLayout.jobs, StoreLayout.jobNodes],
        "checks": [StoreLayout.checks, StoreLayout.checkStatuses],
        "configs": [StoreLayout.configs],
        "audit": [StoreLayout.audit],
        "rollouts": [StoreLayout.rollouts, StoreLayout.rolloutCandidates],
    ]
    /// Changes are sent at most once per tick, each topic once: a burst of writes is one redraw.
    static let tick: Duration = .milliseconds(500)
    /// A comment every this many quiet ticks keeps proxies from closing the stream.
    static let ticksPerHeartbeat = 30

    private enum Item: Sendable {
        case changed(String)
        case tick
        case ended(Problem)
    }

    func register(on router: GuardedRouter) {
        router.get("ui/events", access: .page) { request, context in try await events(request, context) }
    }

    private func events(_ request: Request, _ context: Context) async throws -> Response {
        let asked = Set((HTTPHelpers.string(request, "topics") ?? "").split(separator: ",").map(String.init))
        let unknown = asked.subtracting(Self.topics.keys)
        guard unknown.isEmpty, !asked.isEmpty else {
            throw CapstanError(.invalidArgument, "topics: give some of \(Self.topics.keys.sorted().joined(separator: ", ")); unknown: \(unknown.sorted())")
        }
        let prefixes = asked.map { topic in (topic, Self.topics[topic]!) }
        let watch = store.watch(.prefix(StoreLayout.root), fromRevision: nil)
        let lifetime = context.callerLifetime
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                let channel = AsyncChannel<Item>()
                try await withGracefulShutdownHandler {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for try await batch in watch {
                                for (topic, keys) in prefixes where batch.contains(where: { event in keys.contains { event.kv.key.hasPrefix($0) } }) {
                                    await channel.send(.changed(topic))
                                }
                            }
                            channel.finish()
                        }
                        group.addTask {
                            while !Task.isCancelled {
                                try await Task.sleep(for: Self.tick)
                                await channel.send(.tick)
                            }
                        }
                        if let lifetime {
                            group.addTask { await channel.send(.ended(ProblemMapping.problem(for: try await lifetime.end()))) }
                        }
                        defer { group.cancelAll() }
                        var pending = Set<String>()
                        var quietTicks = 0
                        for await item in channel {
                            switch item {
                            case .changed(let topic): pending.insert(topic)
                            case .tick:
                                quietTicks += 1
                                if !pending.isEmpty {
                                    try await writer.write(ByteBuffer(string: pending.sorted().map { "event: changed\ndata: \($0)\n\n" }.joined()))
                                    pending = []
                                    quietTicks = 0
                                } else if quietTicks >= Self.ticksPerHeartbeat {
                                    try await writer.write(ByteBuffer(string: ": heartbeat\n\n"))
                                    quietTicks = 0
                                }
                            case .ended(let problem):
                                try await writer.write(try HTTPHelpers.errorEvent(problem))
                                return
                            }
                        }
                    }
                } onGracefulShutdown: {
                    channel.finish()
                }
                try await writer.finish(nil)
            })
    }
}
