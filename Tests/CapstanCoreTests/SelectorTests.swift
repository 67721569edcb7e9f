import CapstanCore
import Testing

@Suite("Selectors")
struct SelectorTests {
    let web = (labels: ["env": "prod", "role": "web", "zone": "a"], name: "web-1")
    let api = (labels: ["env": "prod", "role": "api", "zone": "b", "canary": "true"], name: "api-7")
    let dev = (labels: ["env": "dev", "role": "web"], name: "dev-box")

    func picks(_ text: String) throws -> [String] {
        let selector = try Selector(text)
        return [web, api, dev].filter { selector.matches(labels: $0.labels, name: $0.name) }.map(\.name)
    }

    @Test func everyKindOfRequirement() throws {
        #expect(try picks("") == ["web-1", "api-7", "dev-box"])
        #expect(try picks("env=prod") == ["web-1", "api-7"])
        #expect(try picks("env==prod") == ["web-1", "api-7"])
        #expect(try picks("env!=prod") == ["dev-box"])
        #expect(try picks("zone!=b") == ["web-1", "dev-box"], "a node without the label is not b")
        #expect(try picks("role in (web,api)") == ["web-1", "api-7", "dev-box"])
        #expect(try picks("zone notin (a)") == ["api-7", "dev-box"])
        #expect(try picks("canary") == ["api-7"])
        #expect(try picks("!canary") == ["web-1", "dev-box"])
        #expect(try picks("name=web-*") == ["web-1"])
        #expect(try picks("name!=*-[0-9]") == ["dev-box"])
        #expect(try picks("name in (dev-box, api-7)") == ["api-7", "dev-box"])
        #expect(try picks("name notin (dev-box)") == ["web-1", "api-7"])
    }

    @Test func requirementsAllHoldAndSpacesDoNotMatter() throws {
        #expect(try picks("env=prod,role in (web,api),!canary,zone!=b") == ["web-1"])
        #expect(try picks("  env = prod ,  role  in  ( web , api ) , ! canary  ") == ["web-1"])
        #expect(try picks("env=prod,env=dev").isEmpty)
    }

    @Test func keysMayCarryADomain() throws {
        let selector = try Selector("example.com/tier=gold")
        #expect(selector.matches(labels: ["example.com/tier": "gold"], name: "x"))
        #expect(!selector.matches(labels: ["tier": "gold"], name: "x"))
        #expect(selector.labelKeys == ["example.com/tier"])
    }

    @Test(arguments: [
        ("web-1", "web-?", true), ("web-12", "web-?", false), ("web-12", "web-*", true), ("x", "*", true),
        ("", "*", true), ("abc", "a*c", true), ("abcbc", "a*bc", true), ("ab", "a*bc", false),
        ("db-b", "db-[abc]", true), ("db-d", "db-[abc]", false), ("db-d", "db-[!abc]", true), ("db-7", "db-[0-9]", true),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "*a*a*a*a*a*a*c", false),
    ])
    func globs(name: String, pattern: String, expected: Bool) throws {
        #expect(try Glob(pattern).matches(name) == expected)
    }

    @Test(arguments: [
        ("env=", 5, "expected a value"),
        ("env=prod,", 10, "expected a requirement after \",\""),
        ("env=prod role=web", 10, "expected \",\" between requirements"),
        ("env in prod", 8, "expected \"(\""),
        ("env in (a,b", 8, "\"(\" is never closed"),
        ("env in (a;b)", 10, "cannot appear in a label value"),
        ("env in (a b)", 11, "expected \",\" or \")\""),
        ("env in ()", 9, "expected a value"),
        ("env is prod", 5, "expected \"=\", \"!=\", \"in\" or \"notin\""),
        ("=prod", 1, "expected a label key"),
        ("-env=prod", 1, "must start with a letter or digit"),
        ("env=pr$d", 7, "cannot appear in a label value"),
        ("name", 1, "\"name\" needs a pattern"),
        ("!name", 2, "never holds"),
        ("name=web-[", 10, "without a closing \"]\""),
        ("name=db-[z-a]", 10, "backwards"),
        ("env=prod,,role=web", 10, "expected a label key"),
    ])
    func errorsPointAtTheColumn(text: String, column: Int, message: String) {
        #expect {
            _ = try Selector(text)
        } throws: { error in
            guard let error = error as? CapstanError else { return false }
            return error.code == .invalidSelector && error.column == column && error.message.contains(message)
        }
    }

    @Test func errorMessagesNameTheColumn() {
        do {
            _ = try Selector("env=prod role=web")
            Issue.record("parsed")
        } catch {
            #expect(error.description == "selector: expected \",\" between requirements, found \"r\" (column 10)")
        }
    }
}
