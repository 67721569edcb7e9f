import CapstanClient
import CapstanCore
import CapstanTesting
import Foundation
import Testing

/// Host metrics from a real agent reading this machine's /proc, through the server to the CLI
/// and a Prometheus scrape.
@Suite("Node metrics", .timeLimit(.minutes(2)))
struct NodeMetricsTests {
    static let joinToken = "test-join-token-0123456789"

    @Test func anAgentsMetricsReachTopMetricsAndTheScrape() async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-metrics")
        defer { directory.remove() }
        try await ServerProcess.with(
            dataDirectory: directory.file("data"),
            extraArguments: ["--join-token", Self.joinToken, "--heartbeat-interval", "200ms", "--metrics-interval", "200ms"]
        ) { server in
            let agent = try await AgentProcess.start(
                server: server.url, dataDirectory: directory.file("agent"), name: "box-1", joinToken: Self.joinToken, labels: ["role=db"])
            try await agent.stopping {
                let client = CapstanClient(server: server.url, author: "test", token: TestAuth.rootToken)
                // The second sample carries rates: CPU share and network.
                var info: NodeMetricsInfo?
                try await eventually(timeout: .seconds(20), "two samples from box-1: \(String(describing: info))") {
                    info = try? await client.nodeMetrics("box-1")
                    return (info?.history.count ?? 0) >= 2 && info?.latest?.cpuPercent != nil
                }
                let sample = try #require(info?.latest)
                #expect(sample.memoryTotalBytes > 0)
                #expect((0...100).contains(sample.cpuPercent ?? -1))
                #expect(sample.disks.contains { $0.totalBytes > 0 })

                let top = try await CapstanBinary.run(["node", "top", "--selector", "role=db", "--server", server.url])
                #expect(top.status == 0, "\(top.stderr)")
                #expect(top.stdout.hasPrefix("NODE"))
                #expect(top.stdout.contains("box-1"))
                // Memory in units a reader takes in at a glance (434.2MiB/23.5GiB), not raw KiB.
                #expect(top.stdout.contains(/\s\d+\.\d(KiB|MiB|GiB|TiB)\/\d+\.\d(MiB|GiB|TiB)\s/), "\(top.stdout)")
                #expect(!top.stdout.contains(/\d{4,}KiB/), "\(top.stdout)")
                let none = try await CapstanBinary.run(["node", "top", "--selector", "role=web", "--server", server.url])
                #expect(!none.stdout.contains("box-1"))
                let shown = try await CapstanBinary.run(["node", "metrics", "box-1", "--server", server.url])
                #expect(shown.stdout.contains("last hour ("))
                #expect(shown.stdout.contains(/memory \d+\.\d(KiB|MiB|GiB|TiB) of \d+\.\d(MiB|GiB|TiB)/), "\(shown.stdout)")

                let scrape = try await ChildProcess.runShell("curl -sf -H \"Authorization: Bearer $CAPSTAN_TOKEN\" \(server.url)/v1/nodes/metrics", environment: [:])
                #expect(scrape.stdout.contains(#"capstan_node_memory_total_bytes{node="box-1"}"#))
                let check = try await ChildProcess.runShell("curl -sf -H \"Authorization: Bearer $CAPSTAN_TOKEN\" \(server.url)/v1/nodes/metrics | promtool check metrics", environment: [:])
                #expect(check.status == 0, "\(check.stdout) \(check.stderr)")

                let unknown = try await CapstanBinary.run(["node", "metrics", "nobody", "--server", server.url])
                #expect(unknown.status == 1)
                #expect(unknown.stderr.contains("not found"))
            }
            // A node cannot be called "metrics": the name is the scrape's.
            let reserved = try await ChildProcess.runShell(
                "curl -s -X POST -H 'Content-Type: application/json' \(server.url)/v1/agent/enroll --data '{\"joinToken\":\"\(Self.joinToken)\",\"name\":\"metrics\",\"labels\":{},\"facts\":{\"hostname\":\"h\",\"os\":\"o\",\"kernel\":\"k\",\"arch\":\"a\",\"cpuCount\":1,\"memoryBytes\":1,\"addresses\":[],\"agentVersion\":\"v\"}}'",
                environment: [:])
            #expect(reserved.stdout.contains("is reserved"), "\(reserved.stdout)")
        }
    }
}
