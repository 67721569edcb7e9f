import CapstanClient
import CapstanCore
import CapstanStore
import CapstanTesting
import Foundation
import Testing

/// Two `capstan server` processes on one real etcd: one set of data, watch fan-out in each,
/// run-once work on one of them.
@Suite("Replicas on one etcd")
struct ReplicaTests {
    /// Two replicas on one etcd that agents join with `token` (heartbeats every 500 ms: short
    /// enough to judge nodes in seconds, long enough that a loaded machine's late heartbeat is
    /// not silence), and a scratch directory.
    static func withTwoAgentReplicas(
        _ body: @Sendable (ServerProcess, ServerProcess, TemporaryDirectory, String) async throws -> Void
    ) async throws {
        try await EtcdProcess.with { etcd in
            let store = "etcd://" + etcd.clientURL.dropFirst("http://".count)
            let directory = try TemporaryDirectory(prefix: "capstan-replicas")
            defer { directory.remove() }
            let token = "test-join-token-0123456789"
            let arguments = ["--store", store, "--join-token", token, "--heartbeat-interval", "500ms"]
            let first = try await ServerProcess.start(dataDirectory: nil, extraArguments: arguments)
            let second = try await ServerProcess.start(dataDirectory: nil, extraArguments: arguments)
            defer {
                for server in [first, second] { server.process.signal(SIGKILL) }
            }
            try await body(first, second, directory, token)
        }
    }

    @Test func aNodeRemovedThroughOneReplicaIsCutOffOnAnother() async throws {
        try await Self.withTwoAgentReplicas { first, second, directory, token in
            // Without a join token: once removed, the agent cannot enroll again by itself.
            let enrolling = try await AgentProcess.start(server: first.url, dataDirectory: directory.file("agent"), name: "web-1", joinToken: token)
            await enrolling.stop()
            let agent = try await AgentProcess.start(server: first.url, dataDirectory: directory.file("agent"), name: "web-1", joinToken: nil)
            try await agent.stopping {
                let removed = try await CapstanBinary.run(["node", "rm", "web-1", "--server", second.url])
                #expect(removed.status == 0, "\(removed.stderr)")
                _ = try await agent.waitForLine(timeout: .seconds(15)) { $0 == "agent disconnected" }
            }
        }
    }

    @Test func aReplicaANodeLeftDoesNotMarkItUnhealthyWhereItIsConnected() async throws {
        try await Self.withTwoAgentReplicas { first, second, directory, token in
            let client = CapstanClient(server: second.url, author: "test", token: TestAuth.rootToken)
            let before = try await AgentProcess.start(server: first.url, dataDirectory: directory.file("agent"), name: "mover", joinToken: token)
            try await eventually(timeout: .seconds(10), "healthy on the first replica") { (try? await client.node("mover").status) == .healthy }
            await before.stop()
            // The node moves to the second replica; the first one sees it fall silent.
            let after = try await AgentProcess.start(server: second.url, dataDirectory: directory.file("agent"), name: "mover", joinToken: token)
            try await after.stopping {
                // Asked through the first replica, which holds no connection and reads the store
                // (where the first replica may have marked it unhealthy while it moved).
                let left = CapstanClient(server: first.url, author: "test", token: TestAuth.rootToken)
                try await eventually(timeout: .seconds(10), "healthy again once on the second replica") {
                    (try? await left.node("mover").status) == .healthy
                }
                // Nothing to await for a write that must not come: look for four seconds, eight of
                // the first replica's heartbeat intervals (it would judge the node after three).
                for _ in 0..<40 {
                    #expect(try await left.node("mover").status == .healthy)
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
        }
    }

    @Test func replicasServeTheSameDataAndHandOverTheCompactionLock() async throws {
        try await EtcdProcess.with { etcd in
            let store = "etcd://" + etcd.clientURL.dropFirst("http://".count)
            let directory = try TemporaryDirectory(prefix: "capstan-replicas")
            defer { directory.remove() }
            // One replica from flags, the other from a config file: both ways must agree.
            let configFile = directory.file("capstan.yaml")
            try Data("store: \(store)\nstore-prefix: /shared/\n".utf8).write(to: URL(fileURLWithPath: configFile))
            let first = try await ServerProcess.start(
                dataDirectory: nil, extraArguments: ["--store", store, "--store-prefix", "/shared", "--lock-ttl", "2", "--compaction-interval", "200ms"])
            let second = try await ServerProcess.start(dataDirectory: nil, extraArguments: ["--config", configFile, "--lock-ttl", "2", "--compaction-interval", "200ms"])
            let elsewhere = try await ServerProcess.start(dataDirectory: nil, extraArguments: ["--store", store, "--store-prefix", "/other"])
            defer {
                for server in [first, second, elsewhere] { server.process.signal(SIGKILL) }
            }
            #expect(first.process.output.contains("data in \(store) under /shared"))

            #expect(try await CapstanBinary.run(["ns", "create", "app", "--server", first.url]).status == 0)
            let watch = try ChildProcess(
                path: CapstanBinary.path, arguments: ["config", "watch", "app/", "--from", "1", "-o", "json", "--server", second.url])
            try await watch.stopping {
                let put = try await CapstanBinary.run(["config", "put", "app/db.yaml", "-", "--server", first.url], stdin: "port: 5432\n")
                #expect(put.status == 0, "\(put.stderr)")
                let read = try await CapstanBinary.run(["config", "get", "app/db.yaml", "--server", second.url])
                #expect(read.stdout == "port: 5432\n")
                _ = try await watch.waitForLine { $0.contains("\"app/db.yaml\"") }

                let back = try await CapstanBinary.run(["config", "put", "app/cache.yaml", "-", "--server", second.url], stdin: "size: 64\n")
                #expect(back.status == 0, "\(back.stderr)")
                #expect(try await CapstanBinary.run(["config", "get", "app/cache.yaml", "--server", first.url]).stdout == "size: 64\n")
                _ = try await watch.waitForLine { $0.contains("\"app/cache.yaml\"") }
                let lines = watch.output.split(separator: "\n")
                #expect(lines.count == 2, "the watch through the second replica saw: \(lines)")
            }

            // Another installation on the same etcd sees none of it.
            let other = try await CapstanBinary.run(["ns", "ls", "-o", "json", "--server", elsewhere.url])
            let namespaces = try JSONSerialization.jsonObject(with: Data(other.stdout.utf8)) as? [Any]
            #expect(namespaces?.isEmpty == true, "\(other.stdout)")

            // Exactly one replica holds the compaction lock; when it stops, the other takes it.
            let etcdStore = try await EtcdStore(endpoints: [etcd.clientURL], prefix: "/shared")
            let feed = Task { try await etcdStore.run() }
            defer { feed.cancel() }
            @Sendable func holderPID(_ kv: KeyValue?) -> Int32? {
                // The holder is written as HOST/PID/RANDOM.
                kv.flatMap { Int32(String(decoding: $0.value, as: UTF8.self).split(separator: "/").dropFirst().first ?? "") }
            }
            let lockKey = "/capstan/locks/compaction"
            var held = try await etcdStore.get(lockKey)
            if held == nil {
                // Both replicas were still starting their campaigns: wait for the first holder.
                for try await batch in etcdStore.watch(.key(lockKey), fromRevision: nil) where batch.contains(where: { $0.kind == .put }) {
                    held = try await etcdStore.get(lockKey)
                    break
                }
            }
            let holder = try #require(holderPID(held))
            #expect([first.process.pid, second.process.pid].contains(holder))
            let (stopping, staying) = holder == first.process.pid ? (first, second) : (second, first)
            let from = try #require(held).modRevision + 1
            await stopping.process.stop()
            let next = try await withTimeout(.seconds(15), "the other replica to take the compaction lock") {
                for try await batch in etcdStore.watch(.key(lockKey), fromRevision: from) {
                    if let put = batch.last(where: { $0.kind == .put }) { return holderPID(put.kv) }
                }
                return nil
            }
            #expect(next == staying.process.pid)
            // Clients of the stopped replica carry on through the other.
            #expect(try await CapstanBinary.run(["config", "get", "app/db.yaml", "--server", staying.url]).stdout == "port: 5432\n")
            for server in [first, second, elsewhere] { await server.process.stop() }
            feed.cancel()
            await etcdStore.shutdown()
        }
    }
}
