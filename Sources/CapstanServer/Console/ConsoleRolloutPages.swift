import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird

/// Rollouts in the console: the list with a start form, a rollout's page (its step, members,
/// every node's state, gates as they stand, candidates and transitions) with step, pause,
/// resume, promote and abort, and the editor's "publish as a candidate".
struct ConsoleRolloutPages {
    typealias Context = CapstanRequestContext

    let view: ConsoleView
    let rollouts: RolloutService

    func register(on router: GuardedRouter) {
        router.get("ui/rollouts", access: .page) { _, context in try await ConsolePages.shown(view, context) { try await list(context) } }
        router.post("ui/rollouts", access: .form) { request, context in try await ConsolePages.shown(view, context) { try await start(request, context) } }
        router.get("ui/rollouts/{name}", access: .page) { _, context in try await ConsolePages.shown(view, context) { try await rollout(context) } }
        router.post("ui/rollouts/{name}/{action}", access: .form) { request, context in
            try await ConsolePages.shown(view, context) { try await move(request, context) }
        }
    }

    private func list(_ context: Context) async throws -> Response {
        let caller = try context.requireCaller()
        guard caller.role.allowsSome(.read, on: .config) else { throw Authorization.forbidden(caller, .read, .config, target: nil) }
        var values = ConsolePages.frame(context, "rollouts")
        values["live"] = "rollouts"
        values["csrf"] = context.consoleCSRF ?? ""
        values["mayStart"] = caller.role.allowsSome(.write, on: .config)
        values["items"] = try await rollouts.list().items.filter { RolloutRoutes.may(.read, context, $0) }.map { info -> [String: Any] in
            [
                "name": info.name, "state": info.state.rawValue, "step": Self.step(info), "selector": info.spec.selector,
                "candidates": info.candidates.map(\.name).joined(separator: ", "), "time": ConsolePages.time(info.createdAt),
            ]
        }
        return view.page("rollouts", values)
    }

    /// Starts a rollout from the form: steps as `10,50,100` (percentages, or node counts with
    /// `nodes` ticked), gates one per line.
    private func start(_ request: Request, _ context: Context) async throws -> Response {
        let caller = try context.requireCaller()
        guard caller.role.allowsSome(.write, on: .config) else { throw Authorization.forbidden(caller, .write, .config, target: nil) }
        var request = request
        let fields = FormFields(try await AuditTrail.collectBody(&request, upTo: ConsoleRoutes.maxForm))
        let name = fields["name"] ?? ""
        let spec = try Self.spec(fields)
        _ = try await rollouts.start(name, spec, actor: context.author(request))
        return ConsoleView.redirect(to: "/ui/rollouts/\(name)")
    }

    static func spec(_ fields: FormFields) throws -> RolloutSpec {
        var steps: [Int] = []
        for item in (fields["steps"] ?? "").split(separator: ",") {
            guard let step = Int(item.trimmingCharacters(in: .whitespaces)) else {
                throw CapstanError(.invalidArgument, "steps: \(String(item).quoted) is not a whole number")
            }
            steps.append(step)
        }
        var interval: Int64?
        if let text = fields["interval"], !text.isEmpty {
            interval = Int64(try DurationParser.parse(text).components.seconds * 1000)
        }
        let gates = (fields["gates"] ?? "").split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let byNodes = fields["unit"] == "nodes"
        return RolloutSpec(
            selector: fields["selector"] ?? "", percentSteps: byNodes ? nil : steps, nodeSteps: byNodes ? steps : nil,
            stepIntervalMilliseconds: interval, gates: gates, onFailure: fields["onFailure"] == "abort" ? .abort : .pause,
            autoPromote: fields["autoPromote"] == "on")
    }

    private func rollout(_ context: Context) async throws -> Response {
        let name = try context.parameters.require("name")
        let info = try await rollouts.rollout(name)
        try RolloutRoutes.authorize(.read, context, info)
        let status = try await rollouts.status(name)
        var values = ConsolePages.frame(context, "rollouts")
        values["live"] = "rollouts,nodes,templates,checks"
        values.merge([
            "name": name, "state": info.state.rawValue, "step": Self.step(info), "selector": info.spec.selector,
            "members": status.members, "open": info.state.isOpen, "running": info.state == .running, "paused": info.state == .paused,
            "mayMove": RolloutRoutes.may(.write, context, info) && info.state.isOpen, "csrf": context.consoleCSRF ?? "",
            "onFailure": info.spec.onFailure.rawValue, "autoPromote": info.spec.autoPromote,
            "steps": info.spec.steps.indices.map { ["text": info.spec.describe(step: $0), "current": $0 == info.step, "done": $0 < info.step] },
            "gates": status.gates.map { ["gate": $0.gate, "passing": $0.passing, "detail": $0.detail] },
            "candidates": info.candidates.map { candidate -> [String: Any] in
                [
                    "kind": candidate.kind.rawValue, "name": candidate.name, "action": candidate.action.rawValue, "author": candidate.author,
                    "isConfig": candidate.kind == .config, "time": ConsolePages.time(candidate.time),
                ]
            },
            "transitions": info.transitions.reversed().map { ["action": $0.action, "actor": $0.actor, "time": ConsolePages.time($0.time), "detail": $0.detail] },
        ]) { _, new in new }
        values["nodes"] = status.nodes.sorted { ($0.member ? 0 : 1, $0.name) < ($1.member ? 0 : 1, $1.name) }.map { node -> [String: Any] in
            [
                "name": node.name, "member": node.member, "connected": node.connected, "status": node.status.rawValue,
                "templates": (node.templates ?? [:]).sorted { $0.key < $1.key }.map { ["name": $0.key, "state": $0.value.rawValue] },
            ]
        }
        return view.page("rollout", values)
    }

    private func move(_ request: Request, _ context: Context) async throws -> Response {
        let name = try context.parameters.require("name")
        let action = try context.parameters.require("action")
        guard RolloutRoutes.actions.contains(action) else { throw CapstanError(.notFound, "a rollout has no action \(action.quoted)") }
        try RolloutRoutes.authorize(.write, context, try await rollouts.rollout(name))
        let actor = context.author(request)
        switch action {
        case "step": _ = try await rollouts.step(name, actor: actor)
        case "pause": _ = try await rollouts.pause(name, actor: actor, reason: "from the console")
        case "resume": _ = try await rollouts.resume(name, actor: actor)
        case "promote": _ = try await rollouts.promote(name, actor: actor, reason: "from the console")
        default: _ = try await rollouts.abort(name, actor: actor, reason: "from the console")
        }
        return ConsoleView.redirect(to: "/ui/rollouts/\(name)")
    }

    /// Open rollouts the caller may add candidates to, for the editor's "publish as a candidate".
    func open(for context: Context) async throws -> [String] {
        try await rollouts.list().items.filter { $0.state.isOpen && RolloutRoutes.may(.read, context, $0) }.map(\.name)
    }

    static func step(_ info: RolloutInfo) -> String {
        "\(info.step + 1) of \(info.spec.steps.count) (\(info.spec.describe(step: info.step)))"
    }
}
