import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird

/// `/v1/schedules`: jobs started on cron ticks.
struct ScheduleRoutes<Context: RequestContext> {
    let schedules: ScheduleService

    static var maxBody: Int { 256 * 1024 }

    func register(on router: Router<Context>) {
        let group = router.group("v1/schedules")
        group.get { _, _ in
            try HTTPHelpers.json(try await schedules.list())
        }
        group.put("{name}") { request, context in
            let body = try await request.body.collect(upTo: Self.maxBody)
            let spec = try JSONDecoder().decode(ScheduleSpec.self, from: Data(buffer: body))
            return try HTTPHelpers.json(try await schedules.put(context.parameters.require("name"), spec))
        }
        group.get("{name}") { _, context in
            try HTTPHelpers.json(try await schedules.schedule(context.parameters.require("name")))
        }
        group.delete("{name}") { _, context in
            try await schedules.remove(context.parameters.require("name"))
            return Response(status: .noContent)
        }
    }
}
