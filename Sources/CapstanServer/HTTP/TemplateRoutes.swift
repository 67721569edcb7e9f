import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird

/// `/v1/templates`: config files rendered on nodes.
struct TemplateRoutes<Context: RequestContext> {
    let templates: TemplateService
    let registry: NodeRegistry

    static var maxBody: Int { 64 * 1024 }

    func register(on router: Router<Context>) {
        let group = router.group("v1/templates")
        group.get { _, _ in
            try HTTPHelpers.json(try await templates.list())
        }
        group.put("{name}") { request, context in
            let body = try await request.body.collect(upTo: Self.maxBody)
            let spec = try JSONDecoder().decode(TemplateSpec.self, from: Data(buffer: body))
            return try HTTPHelpers.json(try await templates.put(context.parameters.require("name"), spec))
        }
        group.get("{name}") { _, context in
            try HTTPHelpers.json(try await templates.template(context.parameters.require("name")))
        }
        group.get("{name}/status") { _, context in
            try HTTPHelpers.json(try await templates.status(context.parameters.require("name"), nodes: registry))
        }
        group.delete("{name}") { _, context in
            try await templates.remove(context.parameters.require("name"))
            return Response(status: .noContent)
        }
    }
}
