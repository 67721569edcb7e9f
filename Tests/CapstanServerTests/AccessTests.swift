import CapstanCore
import CapstanServer
import CapstanStore
import CapstanTesting
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

/// Tokens, roles, the audit log and rate limits, through the router in-process.
@Suite("Access control and audit", .timeLimit(.minutes(2)))
struct AccessTests {
    static let joinToken = "access-tests-join-token-0001"

    struct Fixture: Sendable {
        let client: any TestClientProtocol
        let store: any KeyValueStore
        /// Every route the router serves, as method and path pattern.
        let routes: [Route]

        /// Sends with `token` (nil: none at all).
        func send(
            _ method: HTTPRequest.Method, _ uri: String, token: String? = TestAuth.rootToken, body: String? = nil,
            headers: HTTPFields = [:]
        ) async throws -> TestResponse {
            var headers = headers
            if let token { headers[.authorization] = "Bearer \(token)" }
            return try await client.execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
        }

        /// Creates a role of `rules` and a token holding it.
        func token(rules: [String], name: String = "r\(UInt32.random(in: 0...UInt32.max))") async throws -> String {
            let spec = String(decoding: try JSONEncoder().encode(RoleSpec(rules: rules)), as: UTF8.self)
            let role = try await send(.put, "/v1/roles/\(name)", body: spec)
            #expect(role.status == .ok, "role \(rules): \(String(buffer: role.body))")
            let created = try await send(.post, "/v1/tokens", body: #"{"role":"\#(name)","description":"test \#(name)"}"#)
            #expect(created.status == .created, "\(String(buffer: created.body))")
            return try AccessTests.decoder.decode(CreatedToken.self, from: Data(buffer: created.body)).token
        }

        func audit() async throws -> [AuditEntry] {
            let response = try await send(.get, "/v1/audit?limit=10000")
            return try JSONDecoder().decode(AuditList.self, from: Data(buffer: response.body)).items
        }

        func verify() async throws -> AuditVerification {
            try JSONDecoder().decode(AuditVerification.self, from: Data(buffer: try await send(.get, "/v1/audit/verify").body))
        }
    }

    struct Route: Sendable {
        var method: HTTPRequest.Method
        var path: String
    }

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()

    static func withRouter(
        engine: StoreEngine = .sqlite, limits: AccessLimits = AccessLimits(), _ body: @escaping @Sendable (Fixture) async throws -> Void
    ) async throws {
        try await engine.withStore { store in
            _ = try await AccessControl.bootstrap(store: store, given: TestAuth.rootToken)
            let registry = NodeRegistry(
                store: store, heartbeatInterval: .seconds(5), joinToken: joinToken, logger: Logger(label: "test"))
            let router = CapstanServer.makeRouter(
                service: ConfigService(store: store), registry: registry, limits: limits, store: store, metrics: ServerMetrics())
            let routes = router.routes.map { Route(method: $0.method, path: $0.path.description) }
                .sorted { "\($0.path) \($0.method)" < "\($1.path) \($1.method)" }
            try await Application(router: router).test(.router) { client in
                try await body(Fixture(client: client, store: store, routes: routes))
            }
        }
    }

    /// The route's path with its parameters filled in.
    static func concrete(_ path: String) -> String {
        // A watch that gets through streams forever: a prefix the route refuses ends it at once.
        if path == "/v1/watch" { return "/v1/watch?prefix=x/../" }
        return path.replacingOccurrences(of: "{namespace}", with: "prod").replacingOccurrences(of: "**", with: "app.yaml")
            .replacingOccurrences(of: "{name}", with: "web-1").replacingOccurrences(of: "{id}", with: "x")
    }

    // MARK: The matrix

    /// Every route that needs a caller, walked from the router: no token is 401; a token whose
    /// role grants everything but this resource is 403; a role granting exactly this resource and
    /// action gets past access control (whatever the route answers next).
    @Test func everyRouteAgainstARoleWithAndWithoutItsRight() async throws {
        try await Self.withRouter(limits: Self.unlimited) { fixture in
            var tokens: [String: String] = [:]
            let resources = AccessRule.Resource.allCases
            var checked = 0
            for route in fixture.routes {
                let (method, path) = (route.method, route.path)
                guard let (resource, action) = Self.requirement(method, path) else { continue }
                let uri = Self.concrete(path)
                let body = [.put, .post].contains(method) ? "{}" : nil
                let anonymous = try await fixture.send(method, uri, token: nil, body: body)
                #expect(anonymous.status == .unauthorized, "\(method) \(path) without a token")
                #expect(anonymous.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)

                let othersKey = "not-\(resource):\(action)"
                if tokens[othersKey] == nil {
                    let others = resources.filter { $0 != resource }.map { "\($0.rawValue)::admin" }
                    tokens[othersKey] = try await fixture.token(rules: others + ["\(resource.rawValue)::\(Self.other(action).rawValue)"])
                }
                let denied = try await fixture.send(method, uri, token: tokens[othersKey], body: body)
                #expect(denied.status == .forbidden, "\(method) \(path) with everything but \(resource) \(action): \(denied.status)")
                #expect(String(buffer: denied.body).contains("forbidden"))

                let exactKey = "\(resource):\(action)"
                if tokens[exactKey] == nil { tokens[exactKey] = try await fixture.token(rules: ["\(resource.rawValue)::\(action.rawValue)"]) }
                let allowed = try await fixture.send(method, uri, token: tokens[exactKey], body: body)
                #expect(
                    ![.unauthorized, .forbidden, .tooManyRequests].contains(allowed.status),
                    "\(method) \(path) with \(resource)::\(action): \(allowed.status) \(String(buffer: allowed.body))")
                checked += 1
            }
            #expect(checked >= 40, "only \(checked) routes were walked")
        }
    }

    /// Deny by default: a route registered without its rule would answer 403 "has no access rule"
    /// to everyone, root included.
    @Test func everyRouteIsRegisteredWithItsAccessRule() async throws {
        try await Self.withRouter(limits: Self.unlimited) { fixture in
            #expect(fixture.routes.count >= 50)
            for route in fixture.routes where route.path != "/v1/agent/connect" {
                let body = [.put, .post].contains(route.method) ? "{}" : nil
                let answer = try await fixture.send(route.method, Self.concrete(route.path), body: body)
                #expect(!String(buffer: answer.body).contains("has no access rule"), "\(route.method) \(route.path)")
            }
        }
    }

    /// An action the role does not hold but that is not `admin` (which grants all).
    static func other(_ action: AccessRule.Action) -> AccessRule.Action {
        action == .read ? .delete : .read
    }

    /// What the access table asks of a route, through a request the real middleware answers.
    static func requirement(_ method: HTTPRequest.Method, _ path: String) -> (AccessRule.Resource, AccessRule.Action)? {
        let table: [String: (AccessRule.Resource, AccessRule.Action)] = [
            "namespaces": (.namespace, .read), "config": (.config, .read), "configs": (.config, .read), "history": (.config, .read),
            "diff": (.config, .read), "rollback": (.config, .write), "watch": (.config, .read), "nodes": (.node, .read),
            "templates": (.template, .read), "jobs": (.job, .read), "schedules": (.schedule, .read), "checks": (.check, .read),
            "tokens": (.token, .read), "roles": (.role, .read), "audit": (.audit, .read),
        ]
        let family = path.split(separator: "/").dropFirst().first.map(String.init) ?? ""
        guard path.hasPrefix("/v1/"), let (resource, read) = table[family] else { return nil }
        if family == "rollback" { return (resource, .write) }
        switch method {
        case .get: return (resource, read)
        case .delete: return (resource, .delete)
        default:
            if family == "jobs" { return (resource, .run) }
            return (resource, .write)
        }
    }

    static var unlimited: AccessLimits {
        var limits = AccessLimits()
        limits.requests = .off
        limits.authFailures = .off
        return limits
    }

    // MARK: Scopes

    @Test func prefixRulesReachOnlyTheirPrefix() async throws {
        try await Self.withRouter { fixture in
            for namespace in ["prod", "dev"] {
                #expect(try await fixture.send(.post, "/v1/namespaces", body: #"{"name":"\#(namespace)"}"#).status == .created)
            }
            let token = try await fixture.token(rules: ["config:prod/order-service/:read,write", "namespace:prod:read"])
            #expect(try await fixture.send(.put, "/v1/config/prod/order-service/app.yaml", token: token, body: "a: 1\n").status == .ok)
            #expect(try await fixture.send(.get, "/v1/config/prod/order-service/app.yaml", token: token).status == .ok)
            #expect(try await fixture.send(.put, "/v1/config/prod/billing/app.yaml", token: token, body: "a: 1\n").status == .forbidden)
            #expect(try await fixture.send(.put, "/v1/config/dev/order-service/app.yaml", token: token, body: "a: 1\n").status == .forbidden)
            #expect(try await fixture.send(.delete, "/v1/config/prod/order-service/app.yaml", token: token).status == .forbidden)
            // A listing or a watch must lie inside the rule.
            #expect(try await fixture.send(.get, "/v1/configs?prefix=prod/order-service/", token: token).status == .ok)
            #expect(try await fixture.send(.get, "/v1/configs?prefix=prod/", token: token).status == .forbidden)
            #expect(try await fixture.send(.get, "/v1/watch?prefix=prod/", token: token).status == .forbidden)
            // Listings of named things show only what the role may read.
            let namespaces = try await fixture.send(.get, "/v1/namespaces", token: token)
            let names = try Self.decoder.decode(NamespaceList.self, from: Data(buffer: namespaces.body)).items.map(\.name)
            #expect(names == ["prod"])
            // The author of the write names the token.
            let history = try await fixture.send(.get, "/v1/history/prod/order-service/app.yaml")
            #expect(String(buffer: history.body).contains("(token "))
        }
    }

    @Test func jobsRunOnlyWhereTheRoleAllows() async throws {
        try await Self.withRouter { fixture in
            for (name, env) in [("stage-1", "staging"), ("prod-1", "prod")] {
                let facts = NodeFacts(
                    hostname: name, os: "linux", kernel: "6", arch: "x86_64", cpuCount: 1, memoryBytes: 1, addresses: [], agentVersion: "t",
                    bootTime: nil)
                let enroll = EnrollRequest(joinToken: Self.joinToken, name: name, labels: ["env": env], facts: facts)
                let body = String(decoding: try JSONEncoder().encode(enroll), as: UTF8.self)
                #expect(try await fixture.send(.post, "/v1/agent/enroll", token: nil, body: body).status == .created)
            }
            let token = try await fixture.token(rules: ["job:env=staging:run,read"])
            let everywhere = try await fixture.send(.post, "/v1/jobs", token: token, body: #"{"command":["true"]}"#)
            #expect(everywhere.status == .forbidden)
            #expect(String(buffer: everywhere.body).contains("prod-1"))
            #expect(!String(buffer: everywhere.body).contains("stage-1"))
            let staging = try await fixture.send(.post, "/v1/jobs", token: token, body: #"{"command":["true"],"selector":"env=staging"}"#)
            #expect(staging.status == .created, "\(String(buffer: staging.body))")
            let stagingJob = try Self.decoder.decode(JobInfo.self, from: Data(buffer: staging.body)).id
            // Jobs that reached other nodes are neither shown, read nor cancelled by this token.
            let wide = try await fixture.send(.post, "/v1/jobs", body: #"{"command":["true"]}"#)
            let wideJob = try Self.decoder.decode(JobInfo.self, from: Data(buffer: wide.body)).id
            let listed = try Self.decoder.decode(JobList.self, from: Data(buffer: try await fixture.send(.get, "/v1/jobs", token: token).body))
            #expect(listed.items.map(\.id) == [stagingJob])
            #expect(try await fixture.send(.get, "/v1/jobs/\(wideJob)", token: token).status == .forbidden)
            #expect(try await fixture.send(.get, "/v1/jobs/\(wideJob)/events", token: token).status == .forbidden)
            #expect(try await fixture.send(.post, "/v1/jobs/\(wideJob)/cancel", token: token).status == .forbidden)
            #expect(try await fixture.send(.get, "/v1/jobs/\(stagingJob)", token: token).status == .ok)
            // A tick's key is the scheduler's.
            let taken = try await fixture.send(
                .post, "/v1/jobs", token: token, body: #"{"command":["true"],"selector":"env=staging","idempotencyKey":"schedule:nightly:1"}"#)
            #expect(taken.status == .badRequest)
            // A schedule saved by this token keeps its jobs on staging nodes; a token without any
            // run rule may not save one.
            let schedule = try await fixture.token(rules: ["schedule::write", "job:env=staging:run"])
            let saved = try await fixture.send(
                .put, "/v1/schedules/nightly", token: schedule, body: #"{"cron":"0 3 * * *","timeZone":"UTC","missed":"skip","job":{"command":["true"]}}"#)
            #expect(saved.status == .ok, "\(String(buffer: saved.body))")
            #expect(try Self.decoder.decode(ScheduleInfo.self, from: Data(buffer: saved.body)).onlyOn == ["env=staging"])
            // Templates and checks that run commands bind only nodes the author's jobs may run on.
            let operatorToken = try await fixture.token(rules: ["template::write,run", "check::write,run", "config::read", "job:env=staging:run"])
            let withReload = #"{"selector":"","source":"prod/t","dest":"/etc/t","data":[],"mode":420,"reload":"true","splayMilliseconds":0,"shell":false}"#
            let template = try await fixture.send(.put, "/v1/templates/reloading", token: operatorToken, body: withReload)
            #expect(template.status == .ok, "\(String(buffer: template.body))")
            #expect(try Self.decoder.decode(TemplateInfo.self, from: Data(buffer: template.body)).onlyOn == ["env=staging"])
            let rollout = try Self.decoder.decode(
                TemplateStatus.self, from: Data(buffer: try await fixture.send(.get, "/v1/templates/reloading/status").body))
            #expect(rollout.nodes.map(\.name) == ["stage-1"])
            let commandCheck = #"{"selector":"","kind":"command","target":"true","intervalMilliseconds":10000,"timeoutMilliseconds":2000,"failuresBeforeCritical":3,"successesBeforePassing":2,"shell":false}"#
            let check = try await fixture.send(.put, "/v1/checks/probe", token: operatorToken, body: commandCheck)
            #expect(check.status == .ok, "\(String(buffer: check.body))")
            let checked = try Self.decoder.decode(CheckInfo.self, from: Data(buffer: try await fixture.send(.get, "/v1/checks/probe").body))
            #expect(checked.nodes?.map(\.name) == ["stage-1"])
            let nowhere = try await fixture.token(rules: ["template::write,run", "config::read"])
            let refusedTemplate = try await fixture.send(.put, "/v1/templates/reloading", token: nowhere, body: withReload)
            #expect(refusedTemplate.status == .forbidden)
            #expect(String(buffer: refusedTemplate.body).contains("may run jobs on no node"))

            // Relabelling a node into the role's own job selector would widen the role: refused.
            let relabeller = try await fixture.token(rules: ["node::write", "job:env=staging:run"])
            let widened = try await fixture.send(.post, "/v1/nodes/prod-1/labels", token: relabeller, body: #"{"set":{"env":"staging"},"remove":[]}"#)
            #expect(widened.status == .forbidden)
            #expect(String(buffer: widened.body).contains("may not bring node prod-1 into its job selector"))
            let harmless = try await fixture.send(.post, "/v1/nodes/prod-1/labels", token: relabeller, body: #"{"set":{"tier":"gold"},"remove":[]}"#)
            #expect(harmless.status == .ok, "\(String(buffer: harmless.body))")
            // Nor into a template whose secrets the caller may not read.
            let secretTemplate = #"{"selector":"role=db","source":"prod/t","dest":"/etc/t","data":[],"mode":384,"splayMilliseconds":0,"shell":false,"secrets":["prod/db/password"]}"#
            #expect(try await fixture.send(.put, "/v1/templates/db", body: secretTemplate).status == .ok)
            let intoSecrets = try await fixture.send(.post, "/v1/nodes/stage-1/labels", token: relabeller, body: #"{"set":{"role":"db"},"remove":[]}"#)
            #expect(intoSecrets.status == .forbidden)
            #expect(String(buffer: intoSecrets.body).contains("read-secret"))
            let noRun = try await fixture.token(rules: ["schedule::write"])
            let refused = try await fixture.send(
                .put, "/v1/schedules/other", token: noRun, body: #"{"cron":"0 3 * * *","timeZone":"UTC","missed":"skip","job":{"command":["true"]}}"#)
            #expect(refused.status == .forbidden)
        }
    }

    @Test func nobodyHandsOutMoreThanTheyHold() async throws {
        try await Self.withRouter { fixture in
            let limited = try await fixture.token(rules: ["token::write", "role::write", "config:dev/:read"])
            let admin = try await fixture.send(.post, "/v1/tokens", token: limited, body: #"{"role":"admin"}"#)
            #expect(admin.status == .forbidden)
            let wider = try await fixture.send(.put, "/v1/roles/wider", token: limited, body: #"{"rules":["config::read"]}"#)
            #expect(wider.status == .forbidden)
            let narrower = try await fixture.send(.put, "/v1/roles/narrower", token: limited, body: #"{"rules":["config:dev/app/:read"]}"#)
            #expect(narrower.status == .ok)
            #expect(try await fixture.send(.post, "/v1/tokens", token: limited, body: #"{"role":"narrower"}"#).status == .created)
            #expect(try await fixture.send(.put, "/v1/roles/admin", body: #"{"rules":["config::read"]}"#).status == .conflict)
            #expect(try await fixture.send(.delete, "/v1/roles/narrower").status == .conflict)
            // Nobody revokes a stronger token, nor the token in hand; a token's children expire with it.
            #expect(try await fixture.send(.delete, "/v1/tokens/root", token: limited).status == .forbidden)
            let selfRevoke = try await fixture.send(.delete, "/v1/tokens/root")
            #expect(selfRevoke.status == .conflict)
            #expect(String(buffer: selfRevoke.body).contains("does not revoke itself"))
            _ = try await fixture.send(.put, "/v1/roles/maker", body: #"{"rules":["token::write","config:dev/:read"]}"#)
            let parent = try await fixture.send(.post, "/v1/tokens", body: #"{"role":"maker","ttlSeconds":3600}"#)
            let parentToken = try Self.decoder.decode(CreatedToken.self, from: Data(buffer: parent.body))
            let child = try await fixture.send(.post, "/v1/tokens", token: parentToken.token, body: #"{"role":"narrower"}"#)
            let childInfo = try Self.decoder.decode(CreatedToken.self, from: Data(buffer: child.body)).info
            #expect(childInfo.expiresAt != nil)
            #expect(childInfo.expiresAt! <= parentToken.info.expiresAt!)
            let bad = try await fixture.send(.put, "/v1/roles/bad", body: #"{"rules":["config:prod/:fly"]}"#)
            #expect(bad.status == .badRequest)
            #expect(String(buffer: bad.body).contains("unknown action"))
        }
    }

    // MARK: Tokens

    @Test func aRevokedOrExpiredTokenIsRefused() async throws {
        try await Self.withRouter { fixture in
            let token = try await fixture.token(rules: ["config::read"])
            #expect(try await fixture.send(.get, "/v1/whoami", token: token).status == .ok)
            let id = try #require(token.split(separator: "_").dropFirst().first.map(String.init))
            let listed = try await fixture.send(.get, "/v1/tokens")
            #expect(String(buffer: listed.body).contains(id))
            #expect(!String(buffer: listed.body).contains(token), "a listing shows a token's secret")
            #expect(try await fixture.send(.delete, "/v1/tokens/\(id)").status == .noContent)
            let revoked = try await fixture.send(.get, "/v1/whoami", token: token)
            #expect(revoked.status == .unauthorized)
            #expect(try await fixture.send(.get, "/v1/whoami", token: "cap_\(id)_wrong").status == .unauthorized)
            #expect(try await fixture.send(.get, "/v1/whoami", token: "garbage").status == .unauthorized)

            _ = try await fixture.send(.put, "/v1/roles/reader", body: #"{"rules":["config::read"]}"#)
            let short = try await fixture.send(.post, "/v1/tokens", body: #"{"role":"reader","ttlSeconds":1}"#)
            let expiring = try Self.decoder.decode(CreatedToken.self, from: Data(buffer: short.body)).token
            try await eventually(timeout: .seconds(10), "the token to expire") {
                (try? await fixture.send(.get, "/v1/whoami", token: expiring))?.status == .unauthorized
            }
            #expect(String(buffer: try await fixture.send(.get, "/v1/whoami", token: expiring).body).contains("expired"))
        }
    }

    // MARK: Audit

    /// Every mutating route, walked from the router, leaves one entry; so does a denied read.
    @Test func everyMutatingRouteAndEveryDenialIsAudited() async throws {
        try await Self.withRouter(limits: Self.unlimited) { fixture in
            var mutating = 0
            for route in fixture.routes where ![.get, .head].contains(route.method) {
                let (method, path) = (route.method, route.path)
                let before = try await fixture.audit().first?.sequence ?? 0
                let uri = Self.concrete(path)
                let body = [.put, .post].contains(method) ? "{}" : nil
                let response = try await fixture.send(method, uri, body: body)
                let entries = try await fixture.audit().filter { $0.sequence > before && $0.resource != "/v1/audit?limit=10000" }
                #expect(entries.count == 1, "\(method) \(path) left \(entries.count) entries")
                let entry = try #require(entries.first)
                #expect(entry.method == method.rawValue)
                #expect(entry.resource.hasPrefix(uri))
                #expect(entry.status == Int(response.status.code))
                // The console's forms are not hashed: the login form's body holds a token.
                if body != nil, !path.hasPrefix("/ui/") { #expect(entry.contentHash?.count == 64, "\(method) \(path) has no content hash") }
                mutating += 1
            }
            #expect(mutating >= 20)
            let before = try await fixture.audit().first?.sequence ?? 0
            #expect(try await fixture.send(.get, "/v1/configs", token: "wrong-token-wrong-token").status == .unauthorized)
            let denied = try #require(try await fixture.audit().first { $0.sequence > before })
            #expect(denied.outcome == "denied")
            #expect(denied.status == 401)
            #expect(denied.actorKind == .anonymous)
            #expect(try await fixture.verify().valid)
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func theChainFindsAnEditedARemovedAndARewrittenEntry(engine: StoreEngine) async throws {
        try await Self.withRouter(engine: engine) { fixture in
            #expect(try await fixture.send(.post, "/v1/namespaces", body: #"{"name":"prod"}"#).status == .created)
            for index in 1...4 {
                #expect(try await fixture.send(.put, "/v1/config/prod/k\(index).txt", body: "\(index)").status == .ok)
            }
            let intact = try await fixture.verify()
            #expect(intact.valid)
            #expect(intact.entries >= 5)
            let key = "/capstan/audit/" + String(repeating: "0", count: 19) + "3"
            let original = try #require(try await fixture.store.get(key)).value

            // Edited: another status in entry 3.
            var edited = try JSONSerialization.jsonObject(with: original) as! [String: Any]
            edited["status"] = 500
            _ = try await fixture.store.put(key, try JSONSerialization.data(withJSONObject: edited, options: [.sortedKeys]))
            let afterEdit = try await fixture.verify()
            #expect(!afterEdit.valid)
            #expect(afterEdit.brokenSequence == 3)
            #expect(afterEdit.problem?.contains("changed") == true)

            // A field added beside the hashed ones (a decoder would drop it): the stored entry is
            // not the one its fields give.
            var annotated = try JSONSerialization.jsonObject(with: original) as! [String: Any]
            annotated["note"] = "approved by nobody"
            _ = try await fixture.store.put(key, try JSONSerialization.data(withJSONObject: annotated, options: [.sortedKeys]))
            let afterAnnotation = try await fixture.verify()
            #expect(!afterAnnotation.valid)
            #expect(afterAnnotation.brokenSequence == 3)
            #expect(afterAnnotation.problem?.contains("changed") == true)

            // Rewritten with a fresh hash of its own: entry 4 no longer links to it.
            var entry = try JSONDecoder().decode(AuditEntry.self, from: original)
            entry.status = 500
            entry.hash = Self.hash(entry)
            _ = try await fixture.store.put(key, try Self.encode(entry))
            let afterRewrite = try await fixture.verify()
            #expect(!afterRewrite.valid)
            #expect(afterRewrite.brokenSequence == 4)

            // Removed.
            _ = try await fixture.store.delete(.key(key))
            let afterRemoval = try await fixture.verify()
            #expect(!afterRemoval.valid)
            #expect(afterRemoval.brokenSequence == 3)
            #expect(afterRemoval.problem?.contains("missing") == true)

            _ = try await fixture.store.put(key, original)
            #expect(try await fixture.verify().valid)
        }
    }

    /// Two replicas appending at once on one store keep one chain: no fork, no lost entry.
    @Test(arguments: StoreEngine.allCases)
    func twoReplicasAppendingAtOnceKeepOneChain(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let replicas = [AuditLog(store: store), AuditLog(store: store)]
            await withTaskGroup(of: Void.self) { group in
                for (index, log) in replicas.enumerated() {
                    // More at once than etcd takes in one transaction (128 operations a branch).
                    for number in 0..<150 {
                        group.addTask {
                            await log.append(
                                AuditLog.Draft(
                                    actorKind: .token, actorID: "r\(index)", actorDescription: "", action: "config.write", method: "PUT",
                                    resource: "/v1/config/prod/\(index)-\(number)", client: "127.0.0.1", status: 200, allowed: true))
                        }
                    }
                }
            }
            // On SQLite an append returns once submitted: both replicas' entries are committed
            // once each has settled (on etcd an append returns once committed).
            await replicas[1].settled()
            let verification = try await replicas[0].verify()
            #expect(verification.valid, "\(verification.problem ?? "")")
            #expect(verification.entries == 300)
            #expect(verification.lastSequence == 300)
            let entries = try await replicas[1].list(limit: 1000)
            #expect(Set(entries.map(\.resource)).count == 300)
        }
    }

    static func encode(_ entry: AuditEntry) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(entry)
    }

    /// The chain's hash, computed here independently: SHA-256 of the JSON with an empty hash.
    static func hash(_ entry: AuditEntry) -> String {
        var entry = entry
        entry.hash = ""
        return SHA256.hash(data: (try? encode(entry)) ?? Data()).map { String(format: "%02x", $0) }.joined()
    }

    /// A join token is printed after `--join-token`: one starting with `-` would be read as an
    /// option and the printed line would not paste. (Base64url starts with `-` once in 64.)
    @Test func joinTokensNeverStartWithADash() {
        let tokens = (0..<2000).map { _ in NodeRegistry.randomJoinToken() }
        #expect(tokens.allSatisfy { !$0.hasPrefix("-") })
        #expect(Set(tokens).count == tokens.count)
        #expect(tokens.allSatisfy { $0.count == 43 })
    }

    // MARK: Rate limits

    /// The scheme is matched in any case and blanks around the token are dropped; anything else
    /// is no bearer token at all.
    @Test func authorizationHeadersAreReadAsRFC6750Says() async throws {
        try await Self.withRouter(limits: Self.unlimited) { fixture in
            for header in ["Bearer \(TestAuth.rootToken)", "bearer \(TestAuth.rootToken)", "BEARER   \(TestAuth.rootToken) \t"] {
                let response = try await fixture.send(.get, "/v1/whoami", token: nil, headers: [.authorization: header])
                #expect(response.status == .ok, "\(header.debugDescription)")
            }
            for header in ["Bearer", "Bearer ", "Bearer  \t ", "Basic \(TestAuth.rootToken)", "Bearer\(TestAuth.rootToken)", TestAuth.rootToken] {
                let response = try await fixture.send(.get, "/v1/whoami", token: nil, headers: [.authorization: header])
                #expect(response.status == .unauthorized, "\(header.debugDescription)")
            }
        }
    }

    /// An entry's stored JSON carries the hash of its JSON without it, even when a field holds
    /// the text of the hash field itself.
    @Test func anAuditEntryIsHashedOverItsOwnJSON() async throws {
        try await Self.withRouter(limits: Self.unlimited) { fixture in
            // The token's description lands in the entry as written.
            let created = try await fixture.send(.post, "/v1/tokens", body: #"{"role":"admin","description":"x\"hash\":\"\"y"}"#)
            #expect(created.status == .created)
            let token = try AccessTests.decoder.decode(CreatedToken.self, from: Data(buffer: created.body)).token
            #expect(try await fixture.send(.post, "/v1/namespaces", token: token, body: #"{"name":"sealed"}"#).status == .created)
            // An answer waits for its entry's place in the commit order, not for its commit.
            var last: AuditEntry?
            try await eventually("the namespace write's audit entry") {
                let kvs = try await fixture.store.range(RangeRequest(.prefix("/capstan/audit/")))
                last = try kvs.kvs.last.map { try JSONDecoder().decode(AuditEntry.self, from: $0.value) }
                return last?.method == "POST" && last?.resource.hasPrefix("/v1/namespaces") == true
            }
            var entry = try #require(last)
            #expect(entry.actorDescription == #"x"hash":""y"#)
            let hash = entry.hash
            entry.hash = ""
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            #expect(SHA256.hash(data: try encoder.encode(entry)).map { String(format: "%02x", $0) }.joined() == hash)
            #expect(try await fixture.verify().valid)
        }
    }

    @Test func guessingAndFloodingAnswer429WithRetryAfter() async throws {
        var limits = AccessLimits()
        limits.authFailures = RateLimiter.Limit(rate: 0.01, burst: 3)
        limits.requests = RateLimiter.Limit(rate: 0.01, burst: 5)
        limits.enrollments = RateLimiter.Limit(rate: 0.01, burst: 2)
        try await Self.withRouter(limits: limits) { fixture in
            // Guessing tokens: after three failures the address's next failures answer 429; a
            // valid token from the same address (a NAT) still passes.
            for _ in 0..<3 { #expect(try await fixture.send(.get, "/v1/whoami", token: "guess-guess-guess-guess").status == .unauthorized) }
            let blocked = try await fixture.send(.get, "/v1/whoami", token: "guess-guess-guess-guess")
            #expect(blocked.status == .tooManyRequests)
            #expect(blocked.headers[.retryAfter] != nil)
            #expect(try await fixture.send(.get, "/v1/whoami", token: nil).status == .tooManyRequests)
            let valid = try await fixture.send(.get, "/v1/whoami")
            #expect(valid.status == .ok)

            // A flood from one token.
            var statuses: [HTTPResponse.Status] = []
            for _ in 0..<7 { statuses.append(try await fixture.send(.get, "/v1/configs").status) }
            // One of the five was spent on whoami above.
            #expect(statuses.prefix(4).allSatisfy { $0 == .ok })
            let flooded = try await fixture.send(.get, "/v1/configs")
            #expect(flooded.status == .tooManyRequests)
            #expect(Int(flooded.headers[.retryAfter] ?? "") ?? 0 >= 1)
            #expect(String(buffer: flooded.body).contains("rate_limited"))

            // Enrollments from one address.
            var enrolls: [HTTPResponse.Status] = []
            for _ in 0..<3 { enrolls.append(try await fixture.send(.post, "/v1/agent/enroll", token: nil, body: "{}").status) }
            #expect(enrolls.last == .tooManyRequests)

        }
    }
}

extension AccessTests {
    /// A store watch that stalls without failing does not keep a revoked token alive: the cache
    /// is read afresh on its own clock.
    /// The audit trail hashes a write's body and the stored version reuses that hash: both must
    /// be SHA-256 of the body, in lowercase hex, the same in the answer, the history and the log.
    @Test func aWritesRecordedHashIsTheSHA256OfItsBody() async throws {
        try await Self.withRouter { fixture in
            #expect(try await fixture.send(.post, "/v1/namespaces", body: #"{"name":"prod"}"#).status == .created)
            let body = "a: 1\nb: ünïcödé\n"
            let expected = SHA256.hash(data: Data(body.utf8)).map { String(format: "%02x", $0) }.joined()
            let put = try await fixture.send(.put, "/v1/config/prod/app.yaml", body: body)
            #expect(put.status == .ok)
            let info = try AccessTests.decoder.decode(ConfigVersionInfo.self, from: Data(buffer: put.body))
            #expect(info.sha256 == expected)
            let history = try await fixture.send(.get, "/v1/history/prod/app.yaml")
            #expect(String(buffer: history.body).contains(expected), "\(String(buffer: history.body))")
            let entry = try await fixture.audit().first { $0.resource == "/v1/config/prod/app.yaml" && $0.method == "PUT" }
            #expect(entry?.contentHash == expected)
        }
    }

    /// A token that checked out is remembered, not trusted: the same id with another secret is
    /// refused, and a revoked token is refused at once.
    @Test func aRememberedTokenStillNeedsItsSecretAndItsRecord() async throws {
        try await StoreEngine.sqlite.withStore { store in
            _ = try await AccessControl.bootstrap(store: store, given: TestAuth.rootToken)
            let access = AccessControl(store: store)
            let root = try await access.authenticate(TestAuth.rootToken)
            let created = try await access.createToken(TokenSpec(role: "viewer", description: "remembered"), by: root)
            #expect(try await access.authenticate(created.token).tokenID == created.info.id)
            #expect(try await access.authenticate(created.token).tokenID == created.info.id, "from the memory of verified tokens")
            let forged = "cap_\(created.info.id)_" + String(repeating: "x", count: 24)
            await #expect(throws: CapstanError.self) { try await access.authenticate(forged) }
            #expect(try await access.authenticate(created.token).tokenID == created.info.id)
            try await access.revoke(created.info.id, by: root)
            await #expect(throws: CapstanError.self) { try await access.authenticate(created.token) }
        }
    }

    @Test func aStalledWatchDoesNotKeepARevokedTokenAlive() async throws {
        try await StoreEngine.sqlite.withStore { store in
            _ = try await AccessControl.bootstrap(store: store, given: TestAuth.rootToken)
            let stalled = StalledWatchStore(base: store)
            let access = AccessControl(store: stalled, refreshInterval: .milliseconds(100))
            let runner = Task { try await access.run() }
            defer { runner.cancel() }
            let root = try await access.authenticate(TestAuth.rootToken)
            let created = try await access.createToken(TokenSpec(role: "viewer", description: "short-lived"), by: root)
            try await eventually("the new token to be known") { (try? await access.authenticate(created.token)) != nil }
            // Revoked behind the cache's back: only a fresh read can tell.
            _ = try await store.delete(.key("/capstan/access/tokens/\(created.info.id)"))
            try await eventually("the revoked token to be refused") { (try? await access.authenticate(created.token)) == nil }
        }
    }
}

/// A store whose watches never deliver anything and never end: a stalled feed.
struct StalledWatchStore: WrappingStore {
    let base: any KeyValueStore

    final class Silent: WatchCursor {
        func next() async throws -> [WatchEvent]? {
            try await Task.sleep(for: .seconds(3600))
            return nil
        }
    }

    func watch(_ range: KeyRange, fromRevision revision: Int64?) -> WatchStream { WatchStream { Silent() } }
}

extension AccessTests {
    /// An append returns once its entry has its place in the commit order, not once committed:
    /// a write made after it takes a later revision (so revisions stay the same from run to run),
    /// and a read after it (list, verify) waits for it and finds it.
    @Test(arguments: StoreEngine.allCases)
    func anAppendedEntryComesBeforeTheNextWriteAndIsRead(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let audit = AuditLog(store: store)
            var revisions: [(entry: String, next: Int64)] = []
            for index in 0..<20 {
                await audit.append(
                    AuditLog.Draft(
                        actorKind: .token, actorID: "root", actorDescription: "", action: "config.write", method: "PUT",
                        resource: "/v1/config/x/\(index)", client: "127.0.0.1", status: 200, allowed: true))
                let next = try await store.put("/order/\(index)", Data("after".utf8))
                // Entries are stored at `/capstan/audit/SEQUENCE`, zero-padded to 20 digits.
                let sequence = String(index + 1)
                revisions.append(("/capstan/audit/" + String(repeating: "0", count: 20 - sequence.count) + sequence, next.modRevision))
                let listed = try await audit.list(limit: 1)
                #expect(listed.first?.resource == "/v1/config/x/\(index)")
            }
            for (key, next) in revisions {
                let entry = try #require(try await store.get(key))
                #expect(entry.modRevision < next, "\(key) at \(entry.modRevision), the write after it at \(next)")
            }
            #expect(try await audit.verify().entries == 20)
        }
    }

    /// Verifying while entries are appended reads one revision: never a false break.
    @Test(arguments: StoreEngine.allCases)
    func verifyingDuringAppendsFindsTheChainWhole(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let audit = AuditLog(store: store)
            let writer = Task {
                for index in 0..<150 {
                    await audit.append(
                        AuditLog.Draft(
                            actorKind: .token, actorID: "root", actorDescription: "", action: "config.write", method: "PUT",
                            resource: "/v1/config/x/\(index)", client: "127.0.0.1", status: 200, allowed: true))
                }
            }
            var checks = 0
            while true {
                let verification = try await AuditLog(store: store).verify()
                #expect(verification.valid, "\(verification.problem ?? "")")
                checks += 1
                if verification.entries >= 150 { break }
            }
            await writer.value
            #expect(checks >= 2)
        }
    }
}
