import CapstanClient
import CapstanCore
import CapstanTesting
import Foundation
import Testing

/// Rollouts over real agents: member nodes render the candidates, widening keeps them, promote
/// reaches everyone, abort puts the main file back, and gates and timed steps move it alone.
@Suite("Rollouts on a fleet", .timeLimit(.minutes(4)))
struct RolloutFleetTests {
    @Test func membersRenderTheCandidateStepByStepAndAbortAndPromoteReachTheFleet() async throws {
        try await RolloutFixture.with(count: 10) { fleet, _ in
            #expect(try await fleet.capstan(["rollout", "start", "web-v2", "-s", "role=web", "--percent", "10", "--steps", "10,50,100"]).status == 0)
            let put = try await fleet.capstan(["config", "put", "app/app.yaml", "--rollout", "web-v2"], stdin: "port: 2\n")
            #expect(put.status == 0, "\(put.stderr)")
            let first = try await fleet.waitFor("port 2\n", count: 1, otherwise: "port 1\n", "10 % of 10 nodes: exactly one member")
            let status = try await fleet.client.rolloutStatus("web-v2")
            #expect(Set(status.nodes.filter(\.member).map(\.name)) == first)
            try await eventually(timeout: .seconds(20), "the member reports its template applied") {
                let status = try await fleet.client.rolloutStatus("web-v2")
                return status.nodes.first { $0.member }?.templates?.values.allSatisfy { $0 == .applied } == true
            }

            #expect(try await fleet.capstan(["rollout", "step", "web-v2"]).status == 0)
            let half = try await fleet.waitFor("port 2\n", count: 5, otherwise: "port 1\n", "50 %: the first member and four more")
            #expect(first.isSubset(of: half))
            // Non-members' files never moved; the main version is unchanged for plain readers.
            #expect(String(decoding: try await fleet.client.get("app/app.yaml").content, as: UTF8.self) == "port: 1\n")

            #expect(try await fleet.capstan(["rollout", "abort", "web-v2"]).status == 0)
            try await fleet.waitFor("port 1\n", count: 10, otherwise: "", "abort: every member has the main file back")

            #expect(try await fleet.capstan(["rollout", "start", "web-v3", "--percent", "10"]).status == 0)
            #expect(try await fleet.capstan(["config", "put", "app/app.yaml", "--rollout", "web-v3"], stdin: "port: 3\n").status == 0)
            try await fleet.waitFor("port 3\n", count: 1, otherwise: "port 1\n", "web-v3's one member")
            #expect(try await fleet.capstan(["rollout", "promote", "web-v3"]).status == 0)
            try await fleet.waitFor("port 3\n", count: 10, otherwise: "", "promote: every node renders the new main version")
        }
    }

    @Test func aMembersCheckTurningCriticalAbortsAndRestoresTheMainFile() async throws {
        try await RolloutFixture.with(count: 3) { fleet, _ in
            let broken = fleet.directory.file("broken")
            let check = try await fleet.capstan([
                "check", "put", "ok", "-s", "role=web", "--shell", "--command", "test ! -e \(broken)", "--interval", "100ms", "--timeout",
                "100ms", "--failures-before-critical", "2", "--successes-before-passing", "1",
            ])
            #expect(check.status == 0, "\(check.stderr)")
            let start = try await fleet.capstan([
                "rollout", "start", "guarded", "-s", "role=web", "--percent", "50", "--steps", "50,100", "--step-interval", "1h", "--gate",
                "check=ok", "--gate", "unhealthy=0", "--on-failure", "abort",
            ])
            #expect(start.status == 0, "\(start.stderr)")
            #expect(try await fleet.capstan(["config", "put", "app/app.yaml", "--rollout", "guarded"], stdin: "port: 2\n").status == 0)
            let members = try await fleet.waitFor("port 2\n", count: 2, otherwise: "port 1\n", "50 % of 3 nodes: two members")
            try await eventually(timeout: .seconds(20), "the gates hold") {
                try await fleet.client.rolloutStatus("guarded").gates.allSatisfy(\.passing)
            }

            #expect(FileManager.default.createFile(atPath: broken, contents: Data()))
            try await fleet.waitFor("port 1\n", count: 3, otherwise: "", "the failed gate aborted the rollout; members \(members) restored")
            let shown = try await fleet.client.rollout("guarded")
            #expect(shown.state == .aborted)
            #expect(shown.transitions.last?.actor == "server")
            #expect(shown.transitions.last?.detail.hasPrefix("gate check=ok failed: critical on") == true, "\(shown.transitions)")
            let audit = try await fleet.client.audit(resource: "/v1/rollouts/guarded/abort")
            #expect(audit.items.contains { $0.actorKind == .server && $0.action == "rollout.abort" }, "\(audit.items)")
        }
    }

    @Test func timedStepsAndAutoPromotionSurviveAServerRestart() async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-rollout-restart")
        defer { directory.remove() }
        let data = directory.file("data")
        try await ServerProcess.with(dataDirectory: data) { server in
            let client = CapstanClient(server: server.url, author: "test", token: TestAuth.rootToken)
            _ = try await client.createNamespace("app")
            _ = try await client.put("app/app.yaml", content: Data("port: 1\n".utf8))
            _ = try await client.startRollout(
                "timed", RolloutSpec(percentSteps: [10, 50, 100], stepIntervalMilliseconds: 1500, autoPromote: true))
            _ = try await client.putCandidate("app/app.yaml", rollout: "timed", content: Data("port: 2\n".utf8))
        }
        // Stopped at its first step; a new server process takes it on from the store.
        try await ServerProcess.with(dataDirectory: data) { server in
            let client = CapstanClient(server: server.url, author: "test", token: TestAuth.rootToken)
            var info: RolloutInfo?
            try await eventually(timeout: .seconds(30), "the rollout steps and promotes itself: \(String(describing: info?.transitions))") {
                info = try await client.rollout("timed")
                return info?.state == .promoted
            }
            #expect(info?.transitions.map(\.action) == ["start", "candidate", "step", "step", "promote"])
            #expect(info?.transitions.dropFirst(2).allSatisfy { $0.actor == "server" } == true)
            #expect(String(decoding: try await client.get("app/app.yaml").content, as: UTF8.self) == "port: 2\n")
        }
    }
}

extension RolloutFleetTests {
    @Test func aNodeCountRollsTemplateDefinitionsToExactlyThatManyNodes() async throws {
        try await RolloutFixture.with(count: 3) { fleet, _ in
            _ = try await fleet.client.put("app/conf-v2.mustache", content: Data("listen {{port}}\n".utf8))
            #expect(try await fleet.capstan(["rollout", "start", "listen", "--nodes", "1", "--steps", "1,2"]).status == 0)
            for name in fleet.names {
                let put = try await fleet.capstan([
                    "template", "put", "conf-\(name)", "--selector", "name=\(name)", "--source", "app/conf-v2.mustache", "--dest",
                    fleet.file(name), "--data", "app/app.yaml", "--rollout", "listen",
                ])
                #expect(put.status == 0, "\(put.stderr)")
            }
            // A plain put of a rolled template is refused, naming the rollout.
            let plain = try await fleet.capstan([
                "template", "put", "conf-node-0", "--selector", "name=node-0", "--source", "app/conf.mustache", "--dest", fleet.file("node-0"),
            ])
            #expect(plain.status == 1)
            #expect(plain.stderr.contains("under rollout listen"), "\(plain.stderr)")
            let removed = try await fleet.capstan(["template", "rm", "conf-node-0"])
            #expect(removed.status == 1)
            #expect(removed.stderr.contains("under rollout listen"), "\(removed.stderr)")
            let one = try await fleet.waitFor("listen 1\n", count: 1, otherwise: "port 1\n", "--nodes 1: one member renders the new definition")
            #expect(try await fleet.client.rollout("listen").admitted.map(Set.init) == one)
            #expect(try await fleet.capstan(["rollout", "step", "listen"]).status == 0)
            let two = try await fleet.waitFor("listen 1\n", count: 2, otherwise: "port 1\n", "--nodes 2")
            #expect(one.isSubset(of: two))
            #expect(try await fleet.capstan(["rollout", "promote", "listen"]).status == 0)
            try await fleet.waitFor("listen 1\n", count: 3, otherwise: "", "the promoted definitions everywhere")
            #expect(try await fleet.client.template("conf-node-0").spec.source == "app/conf-v2.mustache")
        }
    }

    @Test func failingTemplatesAndMetricsPauseTheRollout() async throws {
        try await RolloutFixture.with(count: 2) { fleet, _ in
            // A candidate every member fails to render (no port): the gate pauses the rollout.
            let start = try await fleet.capstan([
                "rollout", "start", "broken", "--percent", "100", "--gate", "template-failures=0", "--on-failure", "pause",
            ])
            #expect(start.status == 0, "\(start.stderr)")
            #expect(try await fleet.capstan(["config", "put", "app/app.yaml", "--rollout", "broken"], stdin: "other: 1\n").status == 0)
            var info: RolloutInfo?
            try await eventually(timeout: .seconds(30), "the failed renders pause the rollout: \(String(describing: info?.transitions))") {
                info = try await fleet.client.rollout("broken")
                return info?.state == .paused
            }
            #expect(info?.transitions.last?.detail.hasPrefix("gate template-failures=0 failed: 2 failed") == true, "\(String(describing: info))")
            #expect(info?.transitions.map(\.action) == ["start", "candidate", "pause"])
            #expect(fleet.holding("port 1\n").count == 2, "a failed render leaves the old file")
            let status = try await fleet.client.rolloutStatus("broken")
            #expect(status.gates.first?.passing == false)
            #expect(try await fleet.capstan(["rollout", "abort", "broken"]).status == 0)

            // No load average is below zero: a metric gate that cannot hold pauses as soon as samples come.
            let metric = try await fleet.capstan([
                "rollout", "start", "loaded", "--percent", "100", "--gate", "metric:load1<0", "--on-failure", "pause",
            ])
            #expect(metric.status == 0, "\(metric.stderr)")
            #expect(try await fleet.capstan(["config", "put", "app/app.yaml", "--rollout", "loaded"], stdin: "port: 2\n").status == 0)
            try await eventually(timeout: .seconds(40), "the metric gate pauses the rollout: \(String(describing: info?.transitions))") {
                info = try await fleet.client.rollout("loaded")
                return info?.state == .paused
            }
            #expect(info?.transitions.last?.detail.hasPrefix("gate metric:load1<0 failed: load1 past <0") == true, "\(String(describing: info))")
            #expect(info?.transitions.map(\.action) == ["start", "candidate", "pause"], "gates wait for a candidate")
        }
    }
}

extension RolloutFleetTests {
    @Test func twoReplicasOnEtcdStepARolloutOnceEach() async throws {
        try await ReplicatedRollout.with("both") { rollout in
            let info = try await rollout.promoted(through: rollout.second, "promoted by the replicas")
            // Each step once, whichever replica held the lock: never two steps for one interval.
            #expect(info?.transitions.map(\.action) == ["start", "candidate", "step", "step", "step", "step", "promote"])
            #expect(info?.transitions.filter { $0.action == "step" }.map(\.detail).map { $0.prefix(8) } == ["to 20%: ", "to 30%: ", "to 40%: ", "to 100%:"])
            #expect(String(decoding: try await rollout.client(rollout.second).get("app/app.yaml").content, as: UTF8.self) == "port: 2\n")
            await rollout.first.process.stop()
            await rollout.second.process.stop()
        }
    }
}
