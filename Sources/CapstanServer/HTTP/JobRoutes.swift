import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird
import ServiceLifecycle

/// `/v1/jobs`: commands run across nodes.
struct JobRoutes {
    typealias Context = CapstanRequestContext

    let jobs: JobService

    static var maxBody: Int { 256 * 1024 }

    /// The selectors the caller's job rules for `action` reach (nil: every node); fails closed
    /// without a caller.
    static func selectors(_ context: Context, _ action: AccessRule.Action) throws -> [String]? {
        try context.requireCaller().role.jobSelectors(for: action)
    }

    func register(on router: GuardedRouter) {
        // `.some`: a job's selector is checked against the caller's rules for the action by the route.
        let group = router.group("v1/jobs")
        group.post(access: .caller(.job, .run, .some)) { request, context in
            let body = try await request.body.collect(upTo: Self.maxBody)
            let spec = try HTTPHelpers.decode(JobSpec.self, from: body)
            // Schedules key their jobs `schedule:NAME:TICK`: a client may not take a tick's key.
            if spec.idempotencyKey?.hasPrefix("schedule:") == true {
                throw CapstanError(.invalidArgument, "idempotency keys starting with schedule: are the scheduler's")
            }
            return try HTTPHelpers.json(try await jobs.submit(spec, onlyOn: try Self.selectors(context, .run)), status: .created)
        }
        group.get(access: .caller(.job, .read, .some)) { _, context in
            try HTTPHelpers.json(try await jobs.list(within: try Self.selectors(context, .read)))
        }
        group.get("{id}", access: .caller(.job, .read, .some)) { _, context in
            let id = try context.parameters.require("id")
            try await jobs.ensure(id, within: try Self.selectors(context, .read), action: "read")
            return try HTTPHelpers.json(try await jobs.job(id))
        }
        group.post("{id}/cancel", access: .caller(.job, .run, .some)) { _, context in
            let id = try context.parameters.require("id")
            try await jobs.ensure(id, within: try Self.selectors(context, .run), action: "cancel")
            return try HTTPHelpers.json(try await jobs.cancel(id))
        }
        group.get("{id}/events", access: .caller(.job, .read, .some)) { _, context in try await events(context) }
    }

    /// `GET /v1/jobs/{id}/events`: the job's events as Server-Sent Events, from its start.
    func events(_ context: Context) async throws -> Response {
        let id = try context.parameters.require("id")
        try await jobs.ensure(id, within: try Self.selectors(context, .read), action: "read")
        let events = try await jobs.events(id)
        let lifetime = context.callerLifetime
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                try await Self.relay(events, lifetime: lifetime, to: &writer)
                try await writer.finish(nil)
            })
    }

    /// Writes `events` as they come. On shutdown the stream ends (the client follows on again,
    /// elsewhere or later); when the caller stops standing, it ends with an error event.
    private static func relay(
        _ events: AsyncStream<JobEvent>, lifetime: CallerLifetime?, to writer: inout any ResponseBodyWriter
    ) async throws {
        let (relayed, relay) = AsyncStream.makeStream(of: Result<JobEvent, CapstanError>.self)
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await event in events { relay.yield(.success(event)) }
                    relay.finish()
                }
                if let lifetime {
                    group.addTask { relay.yield(.failure(try await lifetime.end())) }
                }
                defer { group.cancelAll() }
                for await item in relayed {
                    switch lifetime?.ended().map({ Result<JobEvent, CapstanError>.failure($0) }) ?? item {
                    case .success(let event):
                        let data = String(decoding: try HTTPHelpers.encoder.encode(event), as: UTF8.self)
                        try await writer.write(ByteBuffer(string: "event: \(event.type.rawValue)\ndata: \(data)\n\n"))
                    case .failure(let reason):
                        try await writer.write(try HTTPHelpers.errorEvent(ProblemMapping.problem(for: reason)))
                        return
                    }
                }
            }
        } onGracefulShutdown: {
            relay.finish()
        }
    }
}
