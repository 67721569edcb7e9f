import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird

/// Nodes in the console: the list (a selector, unhealthy first, a page of 100), and a node's
/// page: status, facts, labels (editable by a role that may write the node), host metrics as
/// small charts drawn by the server, and the node's templates and checks.
struct ConsoleNodePages {
    typealias Context = CapstanRequestContext

    let view: ConsoleView
    let routes: NodeRoutes
    /// Rows per page of the node list.
    static let pageSize = 100

    func register(on router: GuardedRouter) {
        router.get("ui/nodes", access: .page) { request, context in try await ConsolePages.shown(view, context) { try await list(request, context) } }
        router.get("ui/nodes/{name}", access: .page) { _, context in try await ConsolePages.shown(view, context) { try await node(context) } }
        router.post("ui/nodes/{name}/labels", access: .form) { request, context in
            try await ConsolePages.shown(view, context) { try await relabel(request, context) }
        }
    }

    private func list(_ request: Request, _ context: Context) async throws -> Response {
        try context.authorize(.read, on: .node, target: "")
        var values = ConsolePages.frame(context, "nodes")
        values["live"] = "nodes"
        let text = request.uri.queryParameters["selector"].map(String.init) ?? ""
        values["selector"] = text
        let selector: Selector
        do {
            selector = try Selector(text)
        } catch {
            values["error"] = error.message
            values["count"] = 0
            return view.page("nodes", values, status: .badRequest)
        }
        // Unhealthy first, then by name.
        let all = try await routes.registry.list(selector: selector).sorted {
            ($0.isHealthy ? 1 : 0, $0.name) < ($1.isHealthy ? 1 : 0, $1.name)
        }
        let pages = max(1, (all.count + Self.pageSize - 1) / Self.pageSize)
        let page = min(max(1, request.uri.queryParameters["page"].flatMap { Int($0) } ?? 1), pages)
        values["count"] = all.count
        if pages > 1 {
            values["pages"] = pages
            values["page"] = page
        }
        let query = text.isEmpty ? "" : "selector=\(text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")&"
        if page > 1 { values["previous"] = "/ui/nodes?\(query)page=\(page - 1)" }
        if page < pages { values["next"] = "/ui/nodes?\(query)page=\(page + 1)" }
        values["items"] = all.dropFirst((page - 1) * Self.pageSize).prefix(Self.pageSize).map { node -> [String: Any] in
            [
                "name": node.name, "status": node.status.rawValue, "labels": Self.pairs(node.labels),
                "os": "\(node.facts.os) \(node.facts.arch)", "lastSeen": node.lastSeen.map(ConsolePages.time) ?? "",
            ]
        }
        return view.page("nodes", values)
    }

    private func node(_ context: Context) async throws -> Response {
        let name = try context.parameters.require("name")
        try context.authorize(.read, on: .node, target: name)
        let node = try await routes.registry.node(name)
        var values = ConsolePages.frame(context, "nodes")
        values["live"] = "nodes,templates"
        let facts = node.facts
        values.merge([
            "name": node.name, "status": node.status.rawValue, "since": ConsolePages.time(node.statusSince), "connected": node.connected,
            "lastSeen": node.lastSeen.map(ConsolePages.time) ?? "never", "enrolled": ConsolePages.time(node.enrolledAt),
            "facts": [
                ["name": "hostname", "value": facts.hostname], ["name": "OS", "value": facts.os], ["name": "kernel", "value": facts.kernel],
                ["name": "arch", "value": facts.arch], ["name": "CPUs", "value": String(facts.cpuCount)],
                ["name": "memory", "value": ByteSize.human(Int(facts.memoryBytes))], ["name": "addresses", "value": facts.addresses.joined(separator: ", ")],
                ["name": "agent", "value": facts.agentVersion], ["name": "booted", "value": facts.bootTime.map(ConsolePages.time) ?? "?"],
            ],
            "agentLabels": Self.pairs(node.agentLabels), "serverLabels": Self.pairs(node.serverLabels),
            "mayLabel": context.may(.write, on: .node, target: name), "csrf": context.consoleCSRF ?? "",
        ]) { _, new in new }
        if context.may(.read, on: .template, target: "") {
            values["templates"] = try await routes.templates.states(for: node).map { state -> [String: Any] in
                ["name": state.name, "state": state.state.rawValue, "revision": state.revision.map(String.init) ?? "-", "error": state.error ?? ""]
            }
        }
        if context.may(.read, on: .check, target: "") {
            values["checks"] = (try await routes.checks.statusesByNode([node])[node.name] ?? [:]).sorted { $0.key < $1.key }.map {
                ["name": $0.key, "status": $0.value.rawValue]
            }
        }
        values["charts"] = Self.charts(routes.metrics.info(name))
        return view.page("node", values)
    }

    /// The labels form: `k=v` sets a server label, `k-` removes one (as `capstan node label`).
    private func relabel(_ request: Request, _ context: Context) async throws -> Response {
        let name = try context.parameters.require("name")
        try context.authorize(.write, on: .node, target: name)
        var request = request
        let fields = FormFields(try await AuditTrail.collectBody(&request, upTo: ConsoleRoutes.maxForm))
        var change = NodeLabelChange()
        for word in (fields["labels"] ?? "").split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\n" || $0 == "\r" }) {
            if word.hasSuffix("-"), !word.contains("=") {
                change.remove.append(String(word.dropLast()))
            } else if let equals = word.firstIndex(of: "=") {
                change.set[String(word[..<equals])] = String(word[word.index(after: equals)...])
            } else {
                throw CapstanError(.invalidArgument, "labels: \(String(word).quoted) is neither KEY=VALUE nor KEY- (to remove)")
            }
        }
        try await routes.checkRelabel(name, change, context: context)
        _ = try await routes.registry.label(name, change)
        return ConsoleView.redirect(to: "/ui/nodes/\(name)")
    }

    static func pairs(_ labels: [String: String]) -> [String] {
        labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    }

    /// The last hour's CPU, load and memory as polylines in a 300×60 box, newest on the right.
    static func charts(_ info: NodeMetricsInfo) -> [[String: Any]] {
        let points = info.history
        guard points.count >= 2, let first = points.first?.time, let last = points.last?.time, last > first else { return [] }
        let span = last.timeIntervalSince(first)
        func line(_ value: (HostPoint) -> Double?, top: Double) -> String {
            points.compactMap { point -> String? in
                guard let v = value(point) else { return nil }
                let x = point.time.timeIntervalSince(first) / span * 300
                let y = 58 - min(max(v / max(top, 0.000_001), 0), 1) * 56
                return String(format: "%.1f,%.1f", x, y)
            }.joined(separator: " ")
        }
        let latest = points.last!
        let memoryTop = Double(info.latest?.memoryTotalBytes ?? max(1, points.map(\.memoryUsedBytes).max() ?? 1))
        let loadTop = max(1, points.map(\.load1).max() ?? 1)
        return [
            ["title": "CPU busy", "now": latest.cpuPercent.map { String(format: "%.0f %%", $0) } ?? "-", "points": line({ $0.cpuPercent }, top: 100)],
            ["title": "load (1 min)", "now": String(format: "%.2f", latest.load1), "points": line({ $0.load1 }, top: loadTop)],
            ["title": "memory used", "now": ByteSize.human(Int(latest.memoryUsedBytes)), "points": line({ Double($0.memoryUsedBytes) }, top: memoryTop)],
        ]
    }
}
