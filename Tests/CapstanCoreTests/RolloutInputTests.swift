import CapstanCore
import Testing

@Suite("Rollout gates and client identity")
struct RolloutInputTests {
    @Test func gatesParse() throws {
        #expect(try RolloutGate(parsing: "check=http-ok") == .check("http-ok"))
        #expect(try RolloutGate(parsing: "template-failures=0") == .templateFailures(0))
        #expect(try RolloutGate(parsing: "unhealthy=2") == .unhealthy(2))
        #expect(try RolloutGate(parsing: "metric:load1<4") == .metric(.load1, .less, 4))
        #expect(try RolloutGate(parsing: "metric:mem_used_pct<=90.5") == .metric(.memoryUsedPercent, .lessOrEqual, 90.5))
        #expect(try RolloutGate(parsing: "metric:load1<4").description == "metric:load1<4")
    }

    @Test(arguments: ["metric:load1", "metric:load9<4", "metric:load1<four", "unhealthy=-1", "check=", "health=ok", "check=Bad Name"])
    func malformedGatesAreRefusedInOneLine(gate: String) {
        #expect {
            try RolloutGate(parsing: gate)
        } throws: { error in
            let message = (error as? CapstanError)?.message ?? ""
            return message.hasPrefix("--gate \"\(gate)\"") && !message.contains("\n")
        }
    }

    @Test func clientIdentityParsesNameAndLabels() throws {
        let identity = try ClientIdentity(header: "shop-1; app=shop,zone=b")
        #expect(identity.name == "shop-1")
        #expect(identity.labels == ["app": "shop", "zone": "b"])
        #expect(try ClientIdentity(header: identity.header) == identity)
        #expect(try ClientIdentity(header: "shop-2").labels.isEmpty)
    }

    @Test(arguments: ["", "Shop", "shop-1; app", "shop-1; app=sh op", "shop 1"])
    func malformedClientIdentitiesAreRefused(header: String) {
        #expect(throws: CapstanError.self) { try ClientIdentity(header: header) }
    }
}
