import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird

/// The console's pages. Each reads through the same services as the API and shows only what the
/// session's role may read; the links and forms a role may not use are left out (the routes
/// behind them check again).
struct ConsolePages {
    typealias Context = CapstanRequestContext

    let view: ConsoleView
    let service: ConfigService
    let registry: NodeRegistry
    let templates: TemplateService
    let jobs: JobService
    let audit: AuditLog
    /// The node routes' services and their relabel rule, shared with the node pages.
    let nodes: NodeRoutes
    let schedules: ScheduleService
    let access: AccessControl
    let rollouts: RolloutService

    func register(on router: GuardedRouter) {
        router.get("ui", access: .page) { _, context in try await shown(context) { try await overview(context) } }
        router.get("ui/configs", access: .page) { request, context in try await shown(context) { try await configs(request, context) } }
        router.get("ui/audit", access: .page) { request, context in try await shown(context) { try await auditLog(request, context) } }
        let rolloutPages = ConsoleRolloutPages(view: view, rollouts: rollouts)
        rolloutPages.register(on: router)
        ConsoleConfigPages(view: view, service: service, rollouts: rolloutPages).register(on: router)
        ConsoleJobPages(view: view, jobs: jobs, registry: registry).register(on: router)
        ConsoleNodePages(view: view, routes: nodes).register(on: router)
        ConsoleFleetPages(view: view, registry: registry, templates: templates, checks: nodes.checks, schedules: schedules).register(on: router)
        ConsoleAccessPages(view: view, access: access).register(on: router)
        ConsoleEvents(store: service.store).register(on: router)
    }

    /// Runs a page; a refusal, a bad argument or a missing thing is a page that says so, with
    /// its status, not a JSON problem.
    private func shown(_ context: Context, _ page: () async throws -> Response) async throws -> Response {
        try await Self.shown(view, context, page)
    }

    static func shown(_ view: ConsoleView, _ context: Context, _ page: () async throws -> Response) async throws -> Response {
        do {
            return try await page()
        } catch let error as CapstanError {
            let problem = ProblemMapping.problem(for: error)
            var values = Self.frame(context, "")
            values.merge(["heading": problem.title, "text": error.message, "back": "/ui/"]) { _, new in new }
            return view.page("message", values, status: HTTPResponse.Status(code: problem.status))
        }
    }

    // MARK: Pages

    private func overview(_ context: Context) async throws -> Response {
        var values = Self.frame(context, "overview")
        values["live"] = "nodes,templates,jobs,audit,rollouts"
        // Every node, listed once for the counts and every template's state.
        let readsNodes = context.may(.read, on: .node, target: ""), readsTemplates = context.may(.read, on: .template, target: "")
        let nodes = readsNodes || readsTemplates ? try await registry.list() : []
        if readsNodes {
            let healthy = nodes.count(where: \.isHealthy)
            values["nodes"] = ["healthy": healthy, "unhealthy": nodes.count - healthy, "total": nodes.count, "bad": healthy < nodes.count]
        }
        if readsTemplates {
            var failing = 0
            let all = try await templates.list().items
            for template in all where try await templates.status(of: template, among: nodes).failed > 0 { failing += 1 }
            values["templates"] = ["failing": failing, "total": all.count, "bad": failing > 0]
        }
        if let items = try await readableJobs(context) {
            values["jobs"] = ["running": items.count(where: { $0.state == .running }), "total": items.count]
        }
        if let caller = context.caller, caller.role.allowsSome(.read, on: .config) {
            let open = try await rollouts.list().items.filter { $0.state.isOpen && RolloutRoutes.may(.read, context, $0) }
            values["rollouts"] = ["open": open.count, "names": open.map(\.name).joined(separator: ", ")]
        }
        if context.may(.read, on: .audit, target: "") {
            values["audit"] = ["entries": try await audit.list(limit: 10).map(Self.row)]
        }
        return view.page("overview", values)
    }

    private func configs(_ request: Request, _ context: Context) async throws -> Response {
        var values = Self.frame(context, "configs")
        let query = request.uri.queryParameters["q"].map(String.init) ?? ""
        let chosen = request.uri.queryParameters["ns"].map(String.init)
        let namespaces = try await service.listNamespaces().items.filter { context.may(.read, on: .namespace, target: $0.name) }
        values["namespaces"] = namespaces.map { ["name": $0.name, "description": $0.description, "current": $0.name == chosen] }
        values["query"] = query
        // Keys of one namespace, or found across every namespace the role may list.
        let searched = chosen.map { [$0] } ?? namespaces.map(\.name)
        var keys: [ConfigVersionInfo] = []
        for namespace in searched where context.may(.read, on: .config, target: namespace + "/") {
            let prefix = try KeyPrefix(namespace + "/")
            keys += try await service.list(prefix).items.filter { query.isEmpty || $0.key.localizedCaseInsensitiveContains(query) }
            if chosen == nil, query.isEmpty, keys.count >= 500 { break }
        }
        values["heading"] = query.isEmpty ? (chosen.map { "Keys in \($0)" } ?? "Keys") : "Keys matching “\(query)”"
        values["keys"] = keys.prefix(500).map { info -> [String: Any] in
            [
                "key": info.key, "format": info.format.rawValue, "revision": info.revision, "size": ByteSize.human(info.size),
                "time": Self.time(info.time), "secret": info.secret == true, "depth": max(0, info.key.split(separator: "/").count - 2),
            ]
        }
        return view.page("configs", values)
    }

    private func auditLog(_ request: Request, _ context: Context) async throws -> Response {
        try context.authorize(.read, on: .audit, target: "")
        var values = Self.frame(context, "audit")
        let actor = request.uri.queryParameters["actor"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        let resource = request.uri.queryParameters["resource"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        let sinceText = request.uri.queryParameters["since"].map(String.init) ?? ""
        values["actor"] = actor ?? ""
        values["resource"] = resource ?? ""
        values["since"] = sinceText
        var since: Date?
        if !sinceText.isEmpty {
            do {
                since = Date().addingTimeInterval(-Double(try DurationParser.parse(sinceText).components.seconds))
            } catch {
                values["error"] = "since: \(error)"
            }
        }
        values["entries"] = try await audit.list(since: since, actor: actor, resourcePrefix: resource, limit: 200).map(Self.row)
        let verification = try await audit.verify()
        values["verified"] = verification.valid
        values["verification"] =
            verification.valid
            ? "The chain of \(verification.entries) entries checks out."
            : "The chain is broken at entry \(verification.brokenSequence.map(String.init) ?? "?"): \(verification.problem ?? "")"
        return view.page("audit", values)
    }

    // MARK: Parts

    /// What every page's frame shows: the navigation the role may use, who is logged in, and
    /// the session's CSRF token for the logout form.
    static func frame(_ context: Context, _ current: String) -> [String: Any] {
        guard let caller = context.caller else { return [:] }
        var nav: [String: Any] = [
            "who": caller.description.isEmpty ? "token \(caller.tokenID)" : caller.description, "role": caller.role.name,
            "tokenID": caller.tokenID, "csrf": context.consoleCSRF ?? "",
            "mayConfigs": caller.role.allowsSome(.read, on: .config), "mayNodes": caller.role.allows(.read, on: .node, target: ""),
            "mayJobs": caller.role.allowsSome(.read, on: .job) || caller.role.allowsSome(.run, on: .job),
            "mayTemplates": caller.role.allowsSome(.read, on: .template), "mayChecks": caller.role.allowsSome(.read, on: .check),
            "maySchedules": caller.role.allowsSome(.read, on: .schedule), "mayAccess": caller.role.allows(.read, on: .token, target: ""),
            "mayAudit": caller.role.allows(.read, on: .audit, target: ""), "mayRollouts": caller.role.allowsSome(.read, on: .config),
        ]
        // `atConfigs`, not `configs`: a section name the page's own values may also hold.
        if let first = current.first { nav["at" + first.uppercased() + current.dropFirst()] = true }
        return ["nav": nav]
    }

    /// The jobs the role may read, newest first; nil when it may read none.
    private func readableJobs(_ context: Context) async throws -> [JobSummary]? {
        guard let caller = context.caller, caller.role.allowsSome(.read, on: .job) else { return nil }
        return try await jobs.list(within: caller.role.jobSelectors(for: .read)).items
    }

    static func row(_ entry: AuditEntry) -> [String: Any] {
        [
            "time": entry.time, "actor": Self.actor(entry),
            "action": entry.action, "method": entry.method, "resource": entry.resource, "client": entry.client, "status": entry.status,
            "allowed": entry.outcome == "allowed",
        ]
    }

    static func actor(_ entry: AuditEntry) -> String {
        if entry.actorID.isEmpty { return "anonymous" }
        return entry.actorDescription.isEmpty ? entry.actorID : "\(entry.actorDescription) (\(entry.actorID))"
    }

    static func time(_ date: Date) -> String {
        ISO8601DateFormatter().string(from: date)
    }
}
