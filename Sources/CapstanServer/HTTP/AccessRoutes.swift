import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird

/// `/v1/tokens`, `/v1/roles`, `/v1/whoami` and `/v1/audit`.
struct AccessRoutes {
    typealias Context = CapstanRequestContext

    let access: AccessControl
    let audit: AuditLog

    static var maxBody: Int { 64 * 1024 }

    func register(on router: GuardedRouter) {
        router.get("v1/whoami", access: .anyCaller) { _, context in
            let caller = try context.requireCaller()
            return try HTTPHelpers.json(CallerInfo(tokenID: caller.tokenID, description: caller.description, role: caller.role))
        }
        let tokens = router.group("v1/tokens")
        tokens.get(access: .caller(.token, .read, .all)) { _, _ in
            try HTTPHelpers.json(try await access.tokens())
        }
        tokens.post(access: .caller(.token, .write, .all)) { request, context in
            let body = try await request.body.collect(upTo: Self.maxBody)
            let spec = try HTTPHelpers.decode(TokenSpec.self, from: body)
            return try HTTPHelpers.json(try await access.createToken(spec, by: context.requireCaller()), status: .created)
        }
        tokens.delete("{id}", access: .caller(.token, .delete, .all)) { _, context in
            try await access.revoke(context.parameters.require("id"), by: context.requireCaller())
            return Response(status: .noContent)
        }
        let roles = router.group("v1/roles")
        roles.get(access: .caller(.role, .read, .all)) { _, _ in
            try HTTPHelpers.json(try await access.roles())
        }
        roles.get("{name}", access: .caller(.role, .read, .all)) { _, context in
            try HTTPHelpers.json(try await access.role(context.parameters.require("name")))
        }
        roles.put("{name}", access: .caller(.role, .write, .all)) { request, context in
            let body = try await request.body.collect(upTo: Self.maxBody)
            let spec = try HTTPHelpers.decode(RoleSpec.self, from: body)
            return try HTTPHelpers.json(try await access.putRole(context.parameters.require("name"), spec, by: context.requireCaller()))
        }
        roles.delete("{name}", access: .caller(.role, .delete, .all)) { _, context in
            try await access.removeRole(context.parameters.require("name"))
            return Response(status: .noContent)
        }
        router.get("v1/audit", access: .caller(.audit, .read, .all)) { request, _ in
            let since = try HTTPHelpers.string(request, "since").map { text -> Date in
                if let date = ISO8601DateFormatter().date(from: text) { return date }
                // A duration back from now: `since=1h`.
                let duration = try DurationParser.parse(text)
                return Date().addingTimeInterval(-TimeInterval(duration.components.seconds))
            }
            // As the API documents it: 1 to 10000, refused outside (not quietly clamped).
            let limit = try HTTPHelpers.int64(request, "limit").map(Int.init) ?? 100
            guard (1...10_000).contains(limit) else {
                throw CapstanError(.invalidArgument, "query parameter limit must be between 1 and 10000, got \(limit)")
            }
            let entries = try await audit.list(
                since: since, actor: HTTPHelpers.string(request, "actor"), resourcePrefix: HTTPHelpers.string(request, "resource"),
                limit: limit)
            return try HTTPHelpers.json(AuditList(items: entries))
        }
        router.get("v1/audit/verify", access: .caller(.audit, .read, .all)) { _, _ in
            try HTTPHelpers.json(try await audit.verify())
        }
    }
}
