import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird

/// `/v1/checks`: health checks agents run.
struct CheckRoutes {
    typealias Context = CapstanRequestContext

    let checks: CheckService
    let registry: NodeRegistry

    static var maxBody: Int { 64 * 1024 }

    func register(on router: GuardedRouter) {
        let group = router.group("v1/checks")
        group.get(access: .caller(.check, .read, .some)) { _, context in
            var list = try await checks.list()
            list.items.removeAll { !context.may(.read, on: .check, target: $0.name) }
            return try HTTPHelpers.json(list)
        }
        group.put("{name}", access: .caller(.check, .write, .parameter("name"))) { request, context in
            let body = try await request.body.collect(upTo: Self.maxBody)
            let spec = try HTTPHelpers.decode(CheckSpec.self, from: body)
            // A command check runs a command on every node it picks.
            var onlyOn: [String]?
            if spec.kind == .command {
                try context.authorize(.run, on: .check, target: try context.parameters.require("name"))
                onlyOn = try context.commandScope(.check)
            }
            return try HTTPHelpers.json(try await checks.put(context.parameters.require("name"), spec, onlyOn: onlyOn))
        }
        group.get("{name}", access: .caller(.check, .read, .parameter("name"))) { _, context in
            try HTTPHelpers.json(try await checks.check(context.parameters.require("name"), nodes: registry))
        }
        group.delete("{name}", access: .caller(.check, .delete, .parameter("name"))) { _, context in
            try await checks.remove(context.parameters.require("name"))
            return Response(status: .noContent)
        }
    }
}
