import CapstanClient
import CapstanCore
import CapstanStore
import CapstanTesting
import Foundation
import Testing

/// Rollouts when things go wrong mid-way, with real processes: an abort while a member is
/// reloading, and a member's agent killed while it applies the candidate.
@Suite("Rollouts under failure", .timeLimit(.minutes(4)))
struct RolloutFaultTests {
    static let names = ["node-0", "node-1"]

    /// Two nodes whose template's reload leaves a mark while it runs, then takes a second.
    func withPair(_ body: (RolloutFixture, [String: ChildProcess]) async throws -> Void) async throws {
        try await RolloutFixture.with(
            count: Self.names.count,
            reload: { fixture, name in "touch \(fixture.reloading(name)) && sleep 1 && rm -f \(fixture.reloading(name))" }, body)
    }

    @Test func anAbortWhileTheMemberReloadsLeavesItOnTheMainFile() async throws {
        try await withPair { pair, _ in
            #expect(try await pair.capstan(["rollout", "start", "r", "-s", "role=web", "--nodes", "1"]).status == 0)
            #expect(try await pair.capstan(["config", "put", "app/app.yaml", "--rollout", "r"], stdin: "port: 2\n").status == 0)
            let member = try await pair.member("r")
            let other = Self.names.first { $0 != member }!
            try await eventually(timeout: .seconds(20), "the member swapped the candidate in and is reloading") {
                pair.content(member) == "port 2\n" && FileManager.default.fileExists(atPath: pair.reloading(member))
            }
            // Mid-reload: abort.
            #expect(try await pair.capstan(["rollout", "abort", "r"]).status == 0)
            try await eventually(timeout: .seconds(20), "the member is back on the main file, its reload done") {
                pair.content(member) == "port 1\n" && !FileManager.default.fileExists(atPath: pair.reloading(member))
            }
            #expect(pair.content(other) == "port 1\n")
            let status = try await pair.client.rolloutStatus("r")
            #expect(status.rollout.state == .aborted)
            try await eventually(timeout: .seconds(20), "the member reports the main version applied") {
                let node = try await pair.client.node(member)
                return node.templates?.allSatisfy { $0.state == .applied } ?? true
            }
        }
    }

    @Test func aMemberWhoseAgentDiesMidApplyGetsTheCandidateWhenItReturns() async throws {
        try await withPair { pair, agents in
            #expect(try await pair.capstan(["rollout", "start", "r", "-s", "role=web", "--nodes", "1"]).status == 0)
            #expect(try await pair.capstan(["config", "put", "app/app.yaml", "--rollout", "r"], stdin: "port: 2\n").status == 0)
            let member = try await pair.member("r")
            try await eventually(timeout: .seconds(20), "the member is reloading the candidate") {
                FileManager.default.fileExists(atPath: pair.reloading(member))
            }
            // Killed mid-apply (during its reload), then started again.
            agents[member]?.signal(SIGKILL)
            _ = await agents[member]?.exitStatus()
            try? FileManager.default.removeItem(atPath: pair.reloading(member))
            let again = try await pair.startAgent(member)
            defer { again.signal(SIGKILL) }
            try await eventually(timeout: .seconds(30), "the restarted member holds the candidate and reports it applied") {
                guard pair.content(member) == "port 2\n" else { return false }
                let status = try await pair.client.rolloutStatus("r")
                return status.nodes.first { $0.name == member }?.templates?.values.allSatisfy { $0 == .applied } == true
            }
            // Still one member: the restart changed nothing about who is in.
            #expect(try await pair.client.rolloutStatus("r").nodes.filter(\.member).map(\.name) == [member])
            #expect(try await pair.capstan(["rollout", "promote", "r"]).status == 0)
            try await eventually(timeout: .seconds(30), "promote reaches both nodes") {
                Self.names.allSatisfy { pair.content($0) == "port 2\n" }
            }
        }
    }
}

extension RolloutFixture {
    /// The mark a node's reload leaves while it runs (see `RolloutFaultTests.withPair`).
    func reloading(_ node: String) -> String { directory.file("out/\(node).reloading") }
}

extension RolloutFaultTests {
    /// The replica that steps a rollout dies mid-way: the other takes the lock once its lease
    /// runs out and carries on, each step still taken once.
    @Test func aReplicaKilledMidRolloutLeavesTheOtherToFinishIt() async throws {
        try await ReplicatedRollout.with("survives", arguments: ["--lock-ttl", "2"]) { rollout in
            let (first, second) = (rollout.first, rollout.second)
            try await eventually(timeout: .seconds(20), "the first step") {
                try await rollout.client(first).rollout("survives").transitions.contains { $0.action == "step" }
            }
            // Kill whichever replica holds the rollouts' lock (its value is HOST/PID/RANDOM).
            let etcdStore = try await EtcdStore(endpoints: [rollout.etcd.clientURL], prefix: "")
            let held = try #require(try await etcdStore.get("/capstan/locks/rollouts"))
            let pid = Int32(String(decoding: held.value, as: UTF8.self).split(separator: "/").dropFirst().first ?? "")
            let (killed, survivor) = pid == first.process.pid ? (first, second) : (second, first)
            #expect([first.process.pid, second.process.pid].contains(pid))
            killed.process.signal(SIGKILL)
            let info = try await rollout.promoted(through: survivor, "promoted by the survivor")
            #expect(info?.transitions.map(\.action) == ["start", "candidate", "step", "step", "step", "step", "promote"])
            #expect(String(decoding: try await rollout.client(survivor).get("app/app.yaml").content, as: UTF8.self) == "port: 2\n")
            await survivor.process.stop()
        }
    }
}
