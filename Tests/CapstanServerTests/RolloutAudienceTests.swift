import CapstanCore
import Testing

@testable import CapstanServer

/// Rollout membership: sticky, monotonic, exact on small fleets, the same everywhere.
@Suite("Rollout membership")
struct RolloutAudienceTests {
    static let fleet = (0..<10).map { "node-\($0)" }

    func audience(_ widening: RolloutAudience.Widening, selector: String = "") throws -> RolloutAudience {
        RolloutAudience(
            selector: try Selector(selector), threshold: widening.threshold, everyone: widening.everyone,
            admitted: widening.admitted.map(Set.init))
    }

    func members(_ rollout: String, _ widening: RolloutAudience.Widening, _ nodes: [String]) throws -> Set<String> {
        let audience = try audience(widening)
        return Set(nodes.filter { audience.containsNode(rollout: rollout, name: $0, labels: [:]) })
    }

    @Test func theScoreIsAPureFunctionOfRolloutAndName() {
        #expect(RolloutAudience.score(rollout: "web-v2", name: "node-1") == RolloutAudience.score(rollout: "web-v2", name: "node-1"))
        #expect(RolloutAudience.score(rollout: "web-v2", name: "node-1") != RolloutAudience.score(rollout: "web-v3", name: "node-1"))
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        #expect(RolloutAudience.score(rollout: "ab", name: "c") != RolloutAudience.score(rollout: "a", name: "bc"))
    }

    @Test(arguments: ["web-v2", "db-v7", "x", "rollout-with-a-long-name"])
    func tenNodesTakeOneAtTenPercentThenFiveAtFiftyKeepingTheFirst(rollout: String) throws {
        let first = RolloutAudience.widen(rollout: rollout, percent: 10, nodes: nil, eligible: Self.fleet, previous: nil)
        let atTen = try members(rollout, first, Self.fleet)
        #expect(atTen.count == 1)
        let second = RolloutAudience.widen(rollout: rollout, percent: 50, nodes: nil, eligible: Self.fleet, previous: first)
        let atFifty = try members(rollout, second, Self.fleet)
        #expect(atFifty.count == 5)
        #expect(atTen.isSubset(of: atFifty))
        let all = RolloutAudience.widen(rollout: rollout, percent: 100, nodes: nil, eligible: Self.fleet, previous: second)
        #expect(try members(rollout, all, Self.fleet + ["late-joiner"]).count == 11)
    }

    @Test func aStepRoundsUpSoThatSmallFleetsGetAMember() throws {
        let three = ["a", "b", "c"]
        let step = RolloutAudience.widen(rollout: "r", percent: 10, nodes: nil, eligible: three, previous: nil)
        #expect(try members("r", step, three).count == 1)
    }

    @Test func wideningNeverDropsAMemberAndJoinersDisplaceNobody() throws {
        for seed in 0..<20 {
            let rollout = "rollout-\(seed)"
            var nodes = (0..<(5 + seed * 7)).map { "n\(seed)-\($0)" }
            var previous: RolloutAudience.Widening?
            var earlier: Set<String> = []
            for percent in [1, 5, 10, 25, 50, 75, 99] {
                let step = RolloutAudience.widen(rollout: rollout, percent: percent, nodes: nil, eligible: nodes, previous: previous)
                let now = try members(rollout, step, nodes)
                #expect(earlier.isSubset(of: now), "step to \(percent)% dropped \(earlier.subtracting(now))")
                #expect(now.count >= (percent * nodes.count + 99) / 100)
                // Nodes join between steps: nobody admitted before leaves.
                nodes += (0..<3).map { "joiner-\(seed)-\(percent)-\($0)" }
                #expect(earlier.isSubset(of: try members(rollout, step, nodes)))
                earlier = try members(rollout, step, nodes)
                previous = step
            }
        }
    }

    @Test func aNodeCountAdmitsExactlyThatManyAndKeepsThem() throws {
        let first = RolloutAudience.widen(rollout: "r", percent: nil, nodes: 2, eligible: Self.fleet, previous: nil)
        let two = try members("r", first, Self.fleet)
        #expect(two.count == 2)
        // A node with a lower score joins: it does not push an admitted one out.
        let joiners = (0..<50).map { "late-\($0)" }
        #expect(try members("r", first, Self.fleet + joiners) == two)
        let second = RolloutAudience.widen(rollout: "r", percent: nil, nodes: 5, eligible: Self.fleet + joiners, previous: first)
        let five = try members("r", second, Self.fleet + joiners)
        #expect(five.count == 5)
        #expect(two.isSubset(of: five))
    }

    @Test func withoutNodesAStepIsItsShareOfTheScoreSpace() throws {
        let half = RolloutAudience.widen(rollout: "api", percent: 50, nodes: nil, eligible: [], previous: nil)
        let audience = try audience(half)
        #expect(abs(audience.share - 0.5) < 0.001)
        let clients = (0..<1000).map { ClientIdentity(name: "client-\($0)") }
        let inside = clients.count { audience.containsClient(rollout: "api", $0) }
        #expect((400...600).contains(inside), "\(inside) of 1000 clients at 50%")
    }

    @Test func theSelectorDecidesBeforeTheShare() throws {
        let everyone = RolloutAudience.widen(rollout: "r", percent: 100, nodes: nil, eligible: [], previous: nil)
        let audience = try audience(everyone, selector: "role=web")
        #expect(audience.containsNode(rollout: "r", name: "n", labels: ["role": "web"]))
        #expect(!audience.containsNode(rollout: "r", name: "n", labels: ["role": "db"]))
        #expect(audience.containsClient(rollout: "r", ClientIdentity(name: "shop-1", labels: ["role": "web"])))
        #expect(!audience.containsClient(rollout: "r", ClientIdentity(name: "shop-1")))
    }
}
