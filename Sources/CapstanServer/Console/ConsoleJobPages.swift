import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird

/// Jobs in the console: the list with a run form (whose selector says how many nodes it picks
/// before anything runs), a job's page with each node's result and output, followed live, and
/// cancel and run again.
struct ConsoleJobPages {
    typealias Context = CapstanRequestContext

    let view: ConsoleView
    let jobs: JobService
    let registry: NodeRegistry

    func register(on router: GuardedRouter) {
        router.get("ui/jobs", access: .page) { request, context in try await ConsolePages.shown(view, context) { try await list(request, context) } }
        router.post("ui/jobs", access: .form) { request, context in try await ConsolePages.shown(view, context) { try await run(request, context) } }
        router.get("ui/jobs/{id}", access: .page) { request, context in
            try await ConsolePages.shown(view, context) { try await job(request, context) }
        }
        router.post("ui/jobs/{id}/cancel", access: .form) { _, context in
            try await ConsolePages.shown(view, context) { try await cancel(context) }
        }
        // The job's events for the page's script: the API's stream, on the session.
        router.get("ui/jobs/{id}/events", access: .page) { _, context in try await JobRoutes(jobs: jobs).events(context) }
        // How many nodes a selector picks, for the run form's script.
        router.get("ui/selector", access: .page) { request, context in try await count(request, context) }
    }

    // MARK: Pages

    private func list(_ request: Request, _ context: Context) async throws -> Response {
        let caller = try context.requireCaller()
        guard caller.role.allowsSome(.read, on: .job) || caller.role.allowsSome(.run, on: .job) else {
            throw Authorization.forbidden(caller, .read, .job, target: nil)
        }
        var values = ConsolePages.frame(context, "jobs")
        values["csrf"] = context.consoleCSRF ?? ""
        values["live"] = "jobs"
        if caller.role.allowsSome(.run, on: .job) {
            let selector = request.uri.queryParameters["selector"].map(String.init) ?? ""
            var form: [String: Any] = ["selector": selector, "command": request.uri.queryParameters["command"].map(String.init) ?? ""]
            if request.uri.queryParameters["selector"] != nil { form["preview"] = try await picks(selector, caller: caller) }
            values["run"] = form
        }
        if caller.role.allowsSome(.read, on: .job) {
            values["items"] = try await jobs.list(within: caller.role.jobSelectors(for: .read)).items.prefix(200).map { job -> [String: Any] in
                [
                    "id": job.id, "state": job.state.rawValue, "command": job.command, "total": job.total, "succeeded": job.succeeded,
                    "failed": job.failed, "time": ConsolePages.time(job.createdAt),
                ]
            }
        }
        return view.page("jobs", values)
    }

    /// Starts the form's job; the job's page follows it.
    private func run(_ request: Request, _ context: Context) async throws -> Response {
        let caller = try context.requireCaller()
        var request = request
        let fields = FormFields(try await AuditTrail.collectBody(&request, upTo: ConsoleRoutes.maxForm))
        let line = (fields["command"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !line.isEmpty else { throw CapstanError(.invalidArgument, "the command is empty: give one to run") }
        let shell = fields["shell"] == "on"
        let spec = JobSpec(selector: fields["selector"] ?? "", command: shell ? [line] : try CommandWords.split(line), shell: shell)
        let job = try await jobs.submit(spec, onlyOn: caller.role.jobSelectors(for: .run))
        return ConsoleView.redirect(to: "/ui/jobs/\(job.id)")
    }

    /// Nodes per page of a job's results.
    static let pageSize = 100

    private func job(_ request: Request, _ context: Context) async throws -> Response {
        let caller = try context.requireCaller()
        let id = try context.parameters.require("id")
        try await jobs.ensure(id, within: caller.role.jobSelectors(for: .read), action: "read")
        let info = try await jobs.job(id)
        var values = ConsolePages.frame(context, "jobs")
        let summary = info.summary
        values.merge([
            "id": info.id, "state": info.state.rawValue, "command": info.spec.commandLine, "selector": info.spec.selector,
            "shell": info.spec.shell, "time": ConsolePages.time(info.createdAt), "running": info.state == .running,
            "counts": "\(summary.succeeded) succeeded, \(summary.failed) failed, \(summary.running) running of \(summary.total)",
            "csrf": context.consoleCSRF ?? "", "reason": info.reason ?? "", "hasReason": info.reason?.isEmpty == false,
            "allNodes": info.spec.selector.isEmpty,
            "mayRun": caller.role.allowsSome(.run, on: .job),
        ]) { _, new in new }
        // Failures first, then what still runs, then the rest; a page of 100 at a time.
        let order: [JobNodeState: Int] = [.failed: 0, .timedOut: 0, .unreachable: 0, .running: 1, .pending: 2]
        let nodes = info.nodes.sorted { (order[$0.state] ?? 3, $0.name) < (order[$1.state] ?? 3, $1.name) }
        let pages = max(1, (nodes.count + Self.pageSize - 1) / Self.pageSize)
        let page = min(max(1, request.uri.queryParameters["page"].flatMap { Int($0) } ?? 1), pages)
        if pages > 1 {
            values["pages"] = pages
            values["page"] = page
            if page > 1 { values["previous"] = "/ui/jobs/\(info.id)?page=\(page - 1)" }
            if page < pages { values["next"] = "/ui/jobs/\(info.id)?page=\(page + 1)" }
        }
        values["nodes"] = nodes.dropFirst((page - 1) * Self.pageSize).prefix(Self.pageSize).map { node -> [String: Any] in
            [
                "name": node.name, "state": node.state.rawValue, "exit": node.exitCode.map(String.init) ?? "-", "attempts": node.attempts,
                "time": node.durationMilliseconds.map { String(format: "%.1f s", Double($0) / 1000) } ?? "-", "error": node.error ?? "",
                "stdout": node.stdout, "stderr": node.stderr, "hasStderr": !node.stderr.isEmpty,
            ]
        }
        return view.page("job", values)
    }

    private func cancel(_ context: Context) async throws -> Response {
        let caller = try context.requireCaller()
        let id = try context.parameters.require("id")
        try await jobs.ensure(id, within: caller.role.jobSelectors(for: .run), action: "cancel")
        _ = try await jobs.cancel(id)
        return ConsoleView.redirect(to: "/ui/jobs/\(id)")
    }

    // MARK: The selector's count

    private func count(_ request: Request, _ context: Context) async throws -> Response {
        let caller = try context.requireCaller()
        let selector = request.uri.queryParameters["selector"].map(String.init) ?? ""
        return try HTTPHelpers.json(["text": try await picks(selector, caller: caller)])
    }

    /// What the run form says of a selector: how many nodes it picks, or why it is refused.
    private func picks(_ text: String, caller: Caller) async throws -> String {
        let selector: Selector
        do {
            selector = try Selector(text)
        } catch {
            return "selector: \(error.message)"
        }
        let nodes = try await registry.list(selector: selector)
        let healthy = nodes.count(where: \.isHealthy)
        var line = "picks \(nodes.count) node\(nodes.count == 1 ? "" : "s") (\(healthy) healthy)"
        if let allowed = caller.role.jobSelectors(for: .run) {
            let parsed = allowed.compactMap { try? Selector($0) }
            let outside = nodes.filter { node in !parsed.contains { $0.matches(labels: node.labels, name: node.name) } }
            if !outside.isEmpty { line += "; your role may not run on \(outside.count) of them" }
        }
        return line
    }
}
