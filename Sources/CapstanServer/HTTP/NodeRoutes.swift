import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird

/// `/v1/nodes` (the node registry) and `/v1/agent/*` (enrollment; the agent connection itself is
/// upgraded to a WebSocket before it reaches the router, so a request that arrives here was not).
struct NodeRoutes {
    typealias Context = CapstanRequestContext

    let registry: NodeRegistry
    let templates: TemplateService
    let metrics: NodeMetrics
    let checks: CheckService
    /// The PEM certificate clients verify this server by; nil on plain HTTP.
    let tlsAnchor: String?

    static var maxBody: Int { 256 * 1024 }

    /// Labels decide where jobs run and which templates (and secrets) a node gets: a relabel may
    /// not bring a node into a job selector the caller's role is confined to, nor into a template
    /// whose secrets the caller may not read. Otherwise `node:NAME:write` would widen itself.
    func checkRelabel(_ name: String, _ change: NodeLabelChange, context: Context) async throws {
        let caller = try context.requireCaller()
        let node = try await registry.node(name)
        var server = node.serverLabels
        for key in change.remove { server.removeValue(forKey: key) }
        server.merge(change.set) { _, new in new }
        let before = node.labels
        let after = node.agentLabels.merging(server) { _, server in server }
        if let selectors = caller.role.jobRunSelectors {
            for text in selectors {
                guard let selector = try? Selector(text) else { continue }
                if selector.matches(labels: after, name: name), !selector.matches(labels: before, name: name) {
                    throw CapstanError(
                        .forbidden,
                        "role \(caller.role.name.quoted) may not bring node \(name) into its job selector \(text.quoted): ask someone who may run jobs on every node")
                }
            }
        }
        for template in try await templates.list().items where !(template.spec.secrets ?? []).isEmpty {
            guard let selector = try? Selector(template.spec.selector) else { continue }
            if selector.matches(labels: server, name: name), !selector.matches(labels: node.serverLabels, name: name) {
                for key in template.spec.secrets ?? [] { try context.authorize(.readSecret, on: .config, target: key) }
            }
        }
    }

    func register(on router: GuardedRouter) {
        router.post("v1/agent/enroll", access: .agent) { request, _ in
            let body = try await request.body.collect(upTo: Self.maxBody)
            let enroll = try HTTPHelpers.decode(EnrollRequest.self, from: body, decoder: .iso8601)
            return try HTTPHelpers.json(try await registry.enroll(enroll), status: .created)
        }
        router.get("v1/agent/connect", access: .agent) { request, context -> Response in
            guard let (name, secret) = AgentGateway.credentials(request.headers) else {
                throw CapstanError(.unauthorized, "an agent connection needs X-Capstan-Node and Authorization: Bearer SECRET")
            }
            let serial = await context.channel.verifiedClientCertificateSerial()
            _ = try await registry.authenticate(name: name, secret: secret, certificateSerial: serial)
            throw HTTPError(.upgradeRequired, message: "connect with a WebSocket upgrade")
        }
        router.post("v1/agent/renew", access: .agent) { request, context in
            guard let (name, secret) = AgentGateway.credentials(request.headers) else {
                throw CapstanError(.unauthorized, "a renewal needs X-Capstan-Node and Authorization: Bearer SECRET")
            }
            let body = try await request.body.collect(upTo: Self.maxBody)
            let renewal = try HTTPHelpers.decode(CertificateRenewal.self, from: body, decoder: .iso8601)
            let serial = await context.channel.verifiedClientCertificateSerial()
            return try HTTPHelpers.json(try await registry.renew(name: name, secret: secret, certificateSerial: serial, request: renewal))
        }
        // The certificate agents and clients verify this server by; a join token pins its fingerprint.
        router.get("v1/agent/ca", access: .open) { _, _ -> Response in
            guard let anchor = tlsAnchor else {
                throw CapstanError(.notFound, "this server speaks plain HTTP: it has no CA certificate")
            }
            return Response(
                status: .ok, headers: [.contentType: "application/x-pem-file"], body: .init(byteBuffer: ByteBuffer(string: anchor)))
        }
        let nodes = router.group("v1/nodes")
        nodes.get(access: .caller(.node, .read, .some)) { request, context in
            let text = request.uri.queryParameters["selector"].map(String.init) ?? ""
            let selector = try Selector(text)
            var nodes = try await registry.list(selector: selector).filter { context.may(.read, on: .node, target: $0.name) }
            let statuses = try await checks.statusesByNode(nodes)
            for index in nodes.indices { nodes[index].checks = statuses[nodes[index].name] ?? [:] }
            return try HTTPHelpers.json(NodeList(items: nodes))
        }
        // Every node's latest host metrics: Prometheus text for scrapers, JSON when asked for.
        nodes.get("metrics", access: .caller(.node, .read, .all)) { request, _ in
            let latest = metrics.latest()
            if request.headers[.accept]?.contains("application/json") == true {
                return try HTTPHelpers.json(NodeTop(items: latest.map { NodeTop.Entry(node: $0.node, sample: $0.sample) }))
            }
            return Response(
                status: .ok, headers: [.contentType: HostMetricsExposition.contentType],
                body: .init(byteBuffer: ByteBuffer(string: HostMetricsExposition.render(latest))))
        }
        nodes.get("{name}/metrics", access: .caller(.node, .read, .parameter("name"))) { _, context in
            let name = try context.parameters.require("name")
            _ = try await registry.node(name)
            return try HTTPHelpers.json(metrics.info(name))
        }
        nodes.get("{name}", access: .caller(.node, .read, .parameter("name"))) { _, context in
            var node = try await registry.node(context.parameters.require("name"))
            node.templates = try await templates.states(for: node)
            node.checks = try await checks.statusesByNode([node])[node.name] ?? [:]
            return try HTTPHelpers.json(node)
        }
        nodes.post("{name}/labels", access: .caller(.node, .write, .parameter("name"))) { request, context in
            let body = try await request.body.collect(upTo: Self.maxBody)
            let change = try HTTPHelpers.decode(NodeLabelChange.self, from: body)
            let name = try context.parameters.require("name")
            try await checkRelabel(name, change, context: context)
            return try HTTPHelpers.json(try await registry.label(name, change))
        }
        nodes.delete("{name}", access: .caller(.node, .delete, .parameter("name"))) { _, context in
            let name = try context.parameters.require("name")
            try await registry.remove(name)
            metrics.forget(name)
            return Response(status: .noContent)
        }
    }
}

extension JSONDecoder {
    /// Dates as ISO 8601, as the API writes them.
    static var iso8601: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
