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

    func register(on router: Router<Context>) {
        let group = router.group("v1/jobs")
        group.post { request, context in
            let body = try await request.body.collect(upTo: Self.maxBody)
            let spec = try JSONDecoder().decode(JobSpec.self, from: Data(buffer: body))
            return try HTTPHelpers.json(try await jobs.submit(spec, onlyOn: context.caller?.role.jobRunSelectors), status: .created)
        }
        group.get { _, _ in
            try HTTPHelpers.json(try await jobs.list())
        }
        group.get("{id}") { _, context in
            try HTTPHelpers.json(try await jobs.job(context.parameters.require("id")))
        }
        group.post("{id}/cancel") { _, context in
            try HTTPHelpers.json(try await jobs.cancel(context.parameters.require("id")))
        }
        group.get("{id}/events") { _, context in
            let events = try await jobs.events(context.parameters.require("id"))
            return Response(
                status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                body: ResponseBody { writer in
                    // On shutdown the stream ends (the client follows on again, elsewhere or later).
                    let (relayed, relay) = AsyncStream.makeStream(of: JobEvent.self)
                    try await withGracefulShutdownHandler {
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            group.addTask {
                                for await event in events { relay.yield(event) }
                                relay.finish()
                            }
                            defer { group.cancelAll() }
                            for await event in relayed {
                                let data = String(decoding: try HTTPHelpers.encoder.encode(event), as: UTF8.self)
                                try await writer.write(ByteBuffer(string: "event: \(event.type.rawValue)\ndata: \(data)\n\n"))
                            }
                        }
                    } onGracefulShutdown: {
                        relay.finish()
                    }
                    try await writer.finish(nil)
                })
        }
    }
}
