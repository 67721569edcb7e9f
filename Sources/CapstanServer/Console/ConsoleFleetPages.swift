import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird

/// Templates, health checks and schedules in the console: what each is, and where it stands on
/// every node it binds (a template's failures with their output, a check's last output).
struct ConsoleFleetPages {
    typealias Context = CapstanRequestContext

    let view: ConsoleView
    let registry: NodeRegistry
    let templates: TemplateService
    let checks: CheckService
    let schedules: ScheduleService

    func register(on router: GuardedRouter) {
        router.get("ui/templates", access: .page) { _, context in try await ConsolePages.shown(view, context) { try await templateList(context) } }
        router.get("ui/templates/{name}", access: .page) { _, context in
            try await ConsolePages.shown(view, context) { try await template(context) }
        }
        router.get("ui/checks", access: .page) { _, context in try await ConsolePages.shown(view, context) { try await checkList(context) } }
        router.get("ui/schedules", access: .page) { _, context in try await ConsolePages.shown(view, context) { try await scheduleList(context) } }
    }

    private func templateList(_ context: Context) async throws -> Response {
        let caller = try context.requireCaller()
        guard caller.role.allowsSome(.read, on: .template) else { throw Authorization.forbidden(caller, .read, .template, target: nil) }
        var values = ConsolePages.frame(context, "templates")
        values["live"] = "templates,nodes"
        var rows: [[String: Any]] = []
        let nodes = try await registry.list()
        for template in try await templates.list().items where context.may(.read, on: .template, target: template.name) {
            let status = try await templates.status(of: template, among: nodes)
            rows.append([
                "name": template.name, "selector": template.spec.selector, "source": template.spec.source, "dest": template.spec.dest,
                "applied": status.applied, "failed": status.failed, "pending": status.pending, "bad": status.failed > 0,
            ])
        }
        values["items"] = rows
        return view.page("templates", values)
    }

    private func template(_ context: Context) async throws -> Response {
        let name = try context.parameters.require("name")
        try context.authorize(.read, on: .template, target: name)
        guard let template = try await templates.list().items.first(where: { $0.name == name }) else {
            throw CapstanError(.notFound, "template \(name.quoted) not found")
        }
        let status = try await templates.status(name, nodes: registry)
        var values = ConsolePages.frame(context, "templates")
        values["live"] = "templates,nodes"
        let spec = template.spec
        values.merge([
            "name": name, "selector": spec.selector, "source": spec.source, "dest": spec.dest, "data": spec.data,
            "mode": String(spec.mode, radix: 8), "check": spec.check ?? "", "reload": spec.reload ?? "", "revision": status.revision,
            "counts": "\(status.applied) applied, \(status.failed) failed, \(status.pending) pending",
        ]) { _, new in new }
        // Failures first: they are what the page is opened for.
        let order: [TemplateState: Int] = [.failed: 0, .pending: 1, .applied: 2]
        values["nodes"] = status.nodes.sorted { (order[$0.state] ?? 3, $0.name) < (order[$1.state] ?? 3, $1.name) }.map { node -> [String: Any] in
            [
                "name": node.name, "state": node.state.rawValue, "revision": node.revision.map(String.init) ?? "-", "error": node.error ?? "",
                "hasError": node.error?.isEmpty == false,
            ]
        }
        return view.page("template", values)
    }

    private func checkList(_ context: Context) async throws -> Response {
        let caller = try context.requireCaller()
        guard caller.role.allowsSome(.read, on: .check) else { throw Authorization.forbidden(caller, .read, .check, target: nil) }
        var values = ConsolePages.frame(context, "checks")
        values["live"] = "checks"
        var rows: [[String: Any]] = []
        for check in try await checks.list().items where context.may(.read, on: .check, target: check.name) {
            let info = try await checks.check(check.name, nodes: registry)
            rows.append([
                "name": check.name, "kind": check.spec.kind.rawValue, "target": check.spec.target, "selector": check.spec.selector,
                "nodes": (info.nodes ?? []).map { node -> [String: Any] in
                    ["name": node.name, "status": node.status.rawValue, "output": node.output ?? ""]
                },
            ])
        }
        values["items"] = rows
        return view.page("checks", values)
    }

    private func scheduleList(_ context: Context) async throws -> Response {
        let caller = try context.requireCaller()
        guard caller.role.allowsSome(.read, on: .schedule) else { throw Authorization.forbidden(caller, .read, .schedule, target: nil) }
        var values = ConsolePages.frame(context, "schedules")
        values["items"] = try await schedules.list().items.filter { context.may(.read, on: .schedule, target: $0.name) }.map { schedule -> [String: Any] in
            [
                "name": schedule.name, "cron": schedule.spec.cron, "timeZone": schedule.spec.timeZone, "command": schedule.spec.job.commandLine,
                "selector": schedule.spec.job.selector, "lastTick": schedule.lastTick.map(ConsolePages.time) ?? "never",
                "lastJob": schedule.lastJob ?? "", "hasLastJob": schedule.lastJob != nil, "lastError": schedule.lastError ?? "",
            ]
        }
        return view.page("schedules", values)
    }
}
