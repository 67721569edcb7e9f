import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird

/// `/v1/templates`: config files rendered on nodes.
struct TemplateRoutes {
    typealias Context = CapstanRequestContext

    let templates: TemplateService
    let registry: NodeRegistry
    /// `?rollout=NAME`: the definition is that rollout's candidate.
    let rollouts: RolloutService

    static var maxBody: Int { 64 * 1024 }

    func register(on router: GuardedRouter) {
        let group = router.group("v1/templates")
        group.get(access: .caller(.template, .read, .some)) { _, context in
            var list = try await templates.list()
            list.items.removeAll { !context.may(.read, on: .template, target: $0.name) }
            return try HTTPHelpers.json(list)
        }
        group.put("{name}", access: .caller(.template, .write, .parameter("name"))) { request, context in
            let body = try await request.body.collect(upTo: Self.maxBody)
            let spec = try HTTPHelpers.decode(TemplateSpec.self, from: body)
            let name = try context.parameters.require("name")
            // A template puts config on nodes and may run commands there: its author must be
            // able to read what it renders and, for check and reload commands, to run them.
            var onlyOn: [String]?
            if spec.check != nil || spec.reload != nil {
                try context.authorize(.run, on: .template, target: name)
                onlyOn = try context.commandScope(.template)
            }
            for key in [spec.source] + spec.data + (spec.secrets ?? []) { try context.authorize(.read, on: .config, target: key) }
            for key in spec.secrets ?? [] { try context.authorize(.readSecret, on: .config, target: key) }
            if let rollout = HTTPHelpers.string(request, "rollout") {
                return try HTTPHelpers.json(
                    try await rollouts.putTemplateCandidate(rollout, template: name, spec: spec, onlyOn: onlyOn, author: context.author(request)))
            }
            return try HTTPHelpers.json(try await templates.put(context.parameters.require("name"), spec, onlyOn: onlyOn))
        }
        group.get("{name}", access: .caller(.template, .read, .parameter("name"))) { _, context in
            try HTTPHelpers.json(try await templates.template(context.parameters.require("name")))
        }
        group.get("{name}/status", access: .caller(.template, .read, .parameter("name"))) { _, context in
            try HTTPHelpers.json(try await templates.status(context.parameters.require("name"), nodes: registry))
        }
        group.delete("{name}", access: .caller(.template, .delete, .parameter("name"))) { _, context in
            try await templates.remove(context.parameters.require("name"))
            return Response(status: .noContent)
        }
    }
}
