import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird

/// Tokens and roles in the console: the lists, a token made (shown once) or revoked, within the
/// caller's own rights as on the API.
struct ConsoleAccessPages {
    typealias Context = CapstanRequestContext

    let view: ConsoleView
    let access: AccessControl

    func register(on router: GuardedRouter) {
        router.get("ui/access", access: .page) { _, context in try await ConsolePages.shown(view, context) { try await page(context, created: nil) } }
        router.post("ui/access/tokens", access: .form) { request, context in
            try await ConsolePages.shown(view, context) { try await create(request, context) }
        }
        router.post("ui/access/tokens/{id}/revoke", access: .form) { _, context in
            try await ConsolePages.shown(view, context) { try await revoke(context) }
        }
    }

    private func page(_ context: Context, created: CreatedToken?) async throws -> Response {
        try context.authorize(.read, on: .token, target: "")
        var values = ConsolePages.frame(context, "access")
        let roles = try await access.roles()
        let mayWrite = context.may(.write, on: .token, target: "")
        let mayRevoke = context.may(.delete, on: .token, target: "")
        values.merge([
            "csrf": context.consoleCSRF ?? "", "mayCreate": mayWrite,
            "roleNames": roles.map(\.name),
            "tokens": try await access.tokens().map { token -> [String: Any] in
                [
                    "id": token.id, "role": token.role, "description": token.description, "created": ConsolePages.time(token.createdAt),
                    "expires": token.expiresAt.map(ConsolePages.time) ?? "never", "by": token.createdBy,
                    "mayRevoke": mayRevoke && token.id != context.caller?.tokenID,
                ]
            },
        ]) { _, new in new }
        if context.may(.read, on: .role, target: "") {
            values["roles"] = roles.map { role -> [String: Any] in
                ["name": role.name, "description": role.description, "rules": role.rules.map(\.description), "builtIn": role.builtIn]
            }
        }
        if let created { values["created"] = ["token": created.token, "id": created.info.id] }
        return view.page("access", values, status: created == nil ? .ok : .created)
    }

    /// A new token, shown on the answer once (the page is not cached); the store keeps its hash.
    private func create(_ request: Request, _ context: Context) async throws -> Response {
        try context.authorize(.write, on: .token, target: "")
        var request = request
        let fields = FormFields(try await AuditTrail.collectBody(&request, upTo: ConsoleRoutes.maxForm))
        var ttl: Int64?
        if let text = fields["ttl"], !text.isEmpty {
            ttl = try DurationParser.parse(text).components.seconds
        }
        let spec = TokenSpec(role: fields["role"] ?? "", description: fields["description"] ?? "", ttlSeconds: ttl)
        let created = try await access.createToken(spec, by: try context.requireCaller())
        return try await page(context, created: created)
    }

    private func revoke(_ context: Context) async throws -> Response {
        try context.authorize(.delete, on: .token, target: "")
        try await access.revoke(try context.parameters.require("id"), by: try context.requireCaller())
        return ConsoleView.redirect(to: "/ui/access")
    }
}
