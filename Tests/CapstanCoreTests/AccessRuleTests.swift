import CapstanCore
import Testing

@Suite("Access rules and roles")
struct AccessRuleTests {
    @Test func rulesParseAndPrintBack() throws {
        let rule = try AccessRule(parsing: "config:prod/order-service/:write,read")
        #expect(rule.resource == .config)
        #expect(rule.scope == "prod/order-service/")
        #expect(rule.actions == [.read, .write])
        #expect(rule.description == "config:prod/order-service/:read,write")
        #expect(try AccessRule(parsing: "*::admin").resource == nil)
        #expect(try AccessRule(parsing: "job:env=staging,role in (web,api):run").scope == "env=staging,role in (web,api)")
        #expect(try AccessRule(parsing: "config:*:read").scope == "")
    }

    @Test(arguments: [
        ("config", "RESOURCE:SCOPE:ACTIONS"),
        ("config:read", "RESOURCE:SCOPE:ACTIONS"),
        ("secrets::read", "unknown resource"),
        ("config::fly", "unknown action"),
        ("config::", "unknown action"),
        ("audit:prod/:read", "takes no scope"),
        ("node::read-secret", "config only"),
        ("job:a in (b:run", "job:a in (b:run"),
    ])
    func badRulesAreRefusedWithTheReason(text: String, message: String) {
        #expect {
            try AccessRule(parsing: text)
        } throws: { error in
            (error as? CapstanError)?.message.contains(message) == true
        }
    }

    @Test func rolesAllowWithinTheirScopesOnly() throws {
        let role = Role(
            name: "dev", rules: [try AccessRule(parsing: "config:prod/app/:read"), try AccessRule(parsing: "template::admin")])
        #expect(role.allows(.read, on: .config, target: "prod/app/db.yaml"))
        #expect(!role.allows(.read, on: .config, target: "prod/other.yaml"))
        #expect(!role.allows(.write, on: .config, target: "prod/app/db.yaml"))
        #expect(!role.allows(.read, on: .config, target: "prod/"), "a listing wider than the rule")
        #expect(role.allows(.delete, on: .template, target: "anything"))
        #expect(!role.allows(.read, on: .node, target: ""))
        #expect(!role.allows(.readSecret, on: .config, target: "prod/app/db.yaml"), "read does not read secrets")
        #expect(Role.admin.allows(.readSecret, on: .config, target: "prod/x"))
        #expect(!Role.viewer.allows(.readSecret, on: .config, target: "prod/x"))
    }

    @Test func jobRunSelectorsAndCoverage() throws {
        let staging = Role(name: "s", rules: [try AccessRule(parsing: "job:env=staging:run")])
        #expect(staging.jobRunSelectors == ["env=staging"])
        #expect(Role.admin.jobRunSelectors == nil)
        #expect(Role.viewer.jobRunSelectors == [])
        #expect(Role.admin.covers(staging))
        #expect(!staging.covers(Role.admin))
        let wide = Role(name: "w", rules: [try AccessRule(parsing: "config:prod/:read,write")])
        let narrow = Role(name: "n", rules: [try AccessRule(parsing: "config:prod/app/:read")])
        #expect(wide.covers(narrow))
        #expect(!narrow.covers(wide))
        #expect(!wide.covers(Role(name: "x", rules: [try AccessRule(parsing: "config:prod/:read-secret")])))
    }
}
