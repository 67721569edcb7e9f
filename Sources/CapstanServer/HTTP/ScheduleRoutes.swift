import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird

/// `/v1/schedules`: jobs started on cron ticks.
struct ScheduleRoutes {
    typealias Context = CapstanRequestContext

    let schedules: ScheduleService

    static var maxBody: Int { 256 * 1024 }

    func register(on router: GuardedRouter) {
        let group = router.group("v1/schedules")
        group.get(access: .caller(.schedule, .read, .some)) { _, context in
            var list = try await schedules.list()
            list.items.removeAll { !context.may(.read, on: .schedule, target: $0.name) }
            return try HTTPHelpers.json(list)
        }
        group.put("{name}", access: .caller(.schedule, .write, .parameter("name"))) { request, context in
            let body = try await request.body.collect(upTo: Self.maxBody)
            let spec = try HTTPHelpers.decode(ScheduleSpec.self, from: body)
            // A schedule starts jobs: its author must be able to run them, and its jobs stay
            // within the author's run rules.
            let caller = try context.requireCaller()
            let onlyOn = caller.role.jobRunSelectors
            if onlyOn?.isEmpty == true { throw Authorization.forbidden(caller, .run, .job, target: nil) }
            return try HTTPHelpers.json(try await schedules.put(context.parameters.require("name"), spec, onlyOn: onlyOn))
        }
        group.get("{name}", access: .caller(.schedule, .read, .parameter("name"))) { _, context in
            try HTTPHelpers.json(try await schedules.schedule(context.parameters.require("name")))
        }
        group.delete("{name}", access: .caller(.schedule, .delete, .parameter("name"))) { _, context in
            try await schedules.remove(context.parameters.require("name"))
            return Response(status: .noContent)
        }
    }
}
