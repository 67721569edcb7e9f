import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird

/// `/v1/rollouts`: gray releases of config keys and templates.
///
/// A rollout touches config keys (and templates): whoever may write every key and template it
/// holds may move it (step, pause, resume, promote, abort), and whoever may read them all may
/// see it. Starting one needs a config write right somewhere; it holds nothing until candidates
/// are written, each with the write right on its key.
struct RolloutRoutes {
    typealias Context = CapstanRequestContext

    let rollouts: RolloutService

    static var maxBody: Int { 64 * 1024 }

    /// The transitions `POST /v1/rollouts/{name}/ACTION` runs.
    static let actions = ["step", "pause", "resume", "promote", "abort"]

    func register(on router: GuardedRouter) {
        // `.some`: a rollout is as visible and as movable as every key and template it holds (the
        // route checks each); starting one needs a config write right somewhere.
        let group = router.group("v1/rollouts")
        group.get(access: .caller(.config, .read, .some)) { _, context in
            var list = try await rollouts.list()
            list.items.removeAll { !Self.may(.read, context, $0) }
            return try HTTPHelpers.json(list)
        }
        group.post(access: .caller(.config, .write, .some)) { request, context in
            let body = try await request.body.collect(upTo: Self.maxBody)
            let start = try HTTPHelpers.decode(RolloutStart.self, from: body)
            return try HTTPHelpers.json(try await rollouts.start(start.name, start.spec, actor: context.author(request)), status: .created)
        }
        group.get("{name}", access: .caller(.config, .read, .some)) { _, context in
            let info = try await rollouts.rollout(context.parameters.require("name"))
            try Self.authorize(.read, context, info)
            return try HTTPHelpers.json(info)
        }
        group.get("{name}/status", access: .caller(.config, .read, .some)) { _, context in
            let name = try context.parameters.require("name")
            try Self.authorize(.read, context, try await rollouts.rollout(name))
            return try HTTPHelpers.json(try await rollouts.status(name))
        }
        for action in Self.actions {
            group.post("{name}/\(action)", access: .caller(.config, .write, .some)) { request, context in
                let name = try context.parameters.require("name")
                try Self.authorize(.write, context, try await rollouts.rollout(name))
                let actor = context.author(request)
                let reason = HTTPHelpers.string(request, "reason") ?? ""
                let info: RolloutInfo
                switch action {
                case "step": info = try await rollouts.step(name, actor: actor)
                case "pause": info = try await rollouts.pause(name, actor: actor, reason: reason)
                case "resume": info = try await rollouts.resume(name, actor: actor)
                case "promote": info = try await rollouts.promote(name, actor: actor, reason: reason)
                default: info = try await rollouts.abort(name, actor: actor, reason: reason)
                }
                return try HTTPHelpers.json(info)
            }
        }
    }

    /// Whether the caller may `action` every key and template the rollout holds.
    static func may(_ action: AccessRule.Action, _ context: Context, _ info: RolloutInfo) -> Bool {
        (try? authorize(action, context, info)) != nil
    }

    static func authorize(_ action: AccessRule.Action, _ context: Context, _ info: RolloutInfo) throws {
        for candidate in info.candidates {
            try context.authorize(action, on: candidate.kind == .config ? .config : .template, target: candidate.name)
        }
    }
}
