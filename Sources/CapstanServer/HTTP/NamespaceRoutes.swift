import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird

/// `/v1/namespaces`: create, list, read, delete (when empty).
struct NamespaceRoutes {
    typealias Context = CapstanRequestContext

    let service: ConfigService

    /// Namespace bodies are tiny; anything bigger is a mistake or an attack.
    static var maxBody: Int { 64 * 1024 }

    func register(on router: GuardedRouter) {
        let group = router.group("v1/namespaces")
        group.get(access: .caller(.namespace, .read, .some)) { _, context in
            var list = try await service.listNamespaces()
            list.items.removeAll { !context.may(.read, on: .namespace, target: $0.name) }
            return try HTTPHelpers.json(list)
        }
        group.post(access: .caller(.namespace, .write, .some)) { request, context in
            let body = try await request.body.collect(upTo: Self.maxBody)
            let create = try HTTPHelpers.decode(CreateNamespaceRequest.self, from: body)
            try context.authorize(.write, on: .namespace, target: create.name)
            let info = try await service.createNamespace(
                create.name, description: create.description ?? "", author: context.author(request))
            return try HTTPHelpers.json(info, status: .created)
        }
        group.get("{namespace}", access: .caller(.namespace, .read, .parameter("namespace"))) { _, context in
            try HTTPHelpers.json(try await service.namespace(context.parameters.require("namespace")))
        }
        group.delete("{namespace}", access: .caller(.namespace, .delete, .parameter("namespace"))) { _, context in
            try await service.deleteNamespace(context.parameters.require("namespace"))
            return Response(status: .noContent)
        }
    }
}
