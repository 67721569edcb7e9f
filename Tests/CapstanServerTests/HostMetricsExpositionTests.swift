import CapstanCore
import CapstanTesting
import Foundation
import Testing

@testable import CapstanServer

/// The Prometheus text of the nodes' latest host samples.
@Suite("Host metrics exposition")
struct HostMetricsExpositionTests {
    static let web = HostSample(
        time: Date(timeIntervalSince1970: 1_700_000_001.5), cpuPercent: 25, load1: 0.5, load5: 0.25, load15: 0.125,
        memoryUsedBytes: 1_000_000, memoryTotalBytes: 4_000_000, swapUsedBytes: 0, swapTotalBytes: 0, disks: [], network: [])

    static let db = HostSample(
        time: Date(timeIntervalSince1970: 1_700_000_000), cpuPercent: 12.5, load1: 2, load5: 1.5, load15: 1,
        memoryUsedBytes: 3_000_000_000, memoryTotalBytes: 8_000_000_000, swapUsedBytes: 1024, swapTotalBytes: 2048,
        disks: [.init(mount: "/srv/we\"ird\\dir\nx", device: "/dev/sdb1", fsType: "ext4", usedBytes: 500, totalBytes: 2000)],
        network: [.init(name: "eth0", rxBytesPerSecond: 1500.5, txBytesPerSecond: 64)])

    @Test func twoNodesRenderSortedWithEscapedLabels() {
        let expected = #"""
            # HELP capstan_node_metrics_sample_timestamp_seconds Unix time at which the node's agent took the sample.
            # TYPE capstan_node_metrics_sample_timestamp_seconds gauge
            capstan_node_metrics_sample_timestamp_seconds{node="db-1"} 1700000000.0
            capstan_node_metrics_sample_timestamp_seconds{node="web-1"} 1700000001.5
            # HELP capstan_node_cpu_busy_ratio Share of all CPUs' time spent neither idle nor waiting for I/O since the previous sample, 0 to 1.
            # TYPE capstan_node_cpu_busy_ratio gauge
            capstan_node_cpu_busy_ratio{node="db-1"} 0.125
            capstan_node_cpu_busy_ratio{node="web-1"} 0.25
            # HELP capstan_node_load1 Load average over 1 minute: runnable and uninterruptible tasks, not divided by CPUs.
            # TYPE capstan_node_load1 gauge
            capstan_node_load1{node="db-1"} 2.0
            capstan_node_load1{node="web-1"} 0.5
            # HELP capstan_node_load5 Load average over 5 minutes.
            # TYPE capstan_node_load5 gauge
            capstan_node_load5{node="db-1"} 1.5
            capstan_node_load5{node="web-1"} 0.25
            # HELP capstan_node_load15 Load average over 15 minutes.
            # TYPE capstan_node_load15 gauge
            capstan_node_load15{node="db-1"} 1.0
            capstan_node_load15{node="web-1"} 0.125
            # HELP capstan_node_memory_used_bytes Memory in use: MemTotal - MemAvailable.
            # TYPE capstan_node_memory_used_bytes gauge
            capstan_node_memory_used_bytes{node="db-1"} 3000000000
            capstan_node_memory_used_bytes{node="web-1"} 1000000
            # HELP capstan_node_memory_total_bytes Memory the kernel can use: MemTotal.
            # TYPE capstan_node_memory_total_bytes gauge
            capstan_node_memory_total_bytes{node="db-1"} 8000000000
            capstan_node_memory_total_bytes{node="web-1"} 4000000
            # HELP capstan_node_swap_used_bytes Swap in use: SwapTotal - SwapFree.
            # TYPE capstan_node_swap_used_bytes gauge
            capstan_node_swap_used_bytes{node="db-1"} 1024
            capstan_node_swap_used_bytes{node="web-1"} 0
            # HELP capstan_node_swap_total_bytes Swap configured: SwapTotal.
            # TYPE capstan_node_swap_total_bytes gauge
            capstan_node_swap_total_bytes{node="db-1"} 2048
            capstan_node_swap_total_bytes{node="web-1"} 0
            # HELP capstan_node_filesystem_used_bytes Bytes in use on the filesystem, reserved blocks included, as df reports.
            # TYPE capstan_node_filesystem_used_bytes gauge
            capstan_node_filesystem_used_bytes{node="db-1",mount="/srv/we\"ird\\dir\nx",device="/dev/sdb1",fstype="ext4"} 500
            # HELP capstan_node_filesystem_size_bytes Size of the filesystem, as df reports.
            # TYPE capstan_node_filesystem_size_bytes gauge
            capstan_node_filesystem_size_bytes{node="db-1",mount="/srv/we\"ird\\dir\nx",device="/dev/sdb1",fstype="ext4"} 2000
            # HELP capstan_node_network_receive_bytes_per_second Bytes received per second since the previous sample.
            # TYPE capstan_node_network_receive_bytes_per_second gauge
            capstan_node_network_receive_bytes_per_second{node="db-1",interface="eth0"} 1500.5
            # HELP capstan_node_network_transmit_bytes_per_second Bytes sent per second since the previous sample.
            # TYPE capstan_node_network_transmit_bytes_per_second gauge
            capstan_node_network_transmit_bytes_per_second{node="db-1",interface="eth0"} 64.0

            """#
        let text = HostMetricsExposition.render([(node: "web-1", sample: Self.web), (node: "db-1", sample: Self.db)])
        #expect(text == expected)
        #expect(!text.contains(" \n"))
    }

    @Test func labelValuesEscapeBackslashQuoteAndLineFeedOnly() {
        #expect(HostMetricsExposition.escape("a\\b\"c\nd\r\ne\tf") == #"a\\b\"c\nd"# + "\r" + #"\ne"# + "\tf")
    }

    @Test func nilValuesAreLeftOut() {
        var first = Self.web
        first.cpuPercent = nil
        first.network = [.init(name: "eth0", rxBytesPerSecond: nil, txBytesPerSecond: nil)]
        var later = Self.db
        later.network = [.init(name: "eth0", rxBytesPerSecond: 10, txBytesPerSecond: nil)]

        let alone = HostMetricsExposition.render([(node: "web-1", sample: first)])
        #expect(!alone.contains("capstan_node_cpu_busy_ratio"))
        #expect(!alone.contains("capstan_node_network_"))
        #expect(!alone.contains("capstan_node_filesystem_"))
        #expect(alone.contains(#"capstan_node_load1{node="web-1"} 0.5"#))

        let both = HostMetricsExposition.render([(node: "web-1", sample: first), (node: "db-1", sample: later)])
        let lines = both.split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("capstan_node_cpu_busy_ratio{") } == [#"capstan_node_cpu_busy_ratio{node="db-1"} 0.125"#])
        #expect(
            lines.filter { $0.hasPrefix("capstan_node_network_") } == [
                #"capstan_node_network_receive_bytes_per_second{node="db-1",interface="eth0"} 10.0"#
            ])
        #expect(!both.contains("capstan_node_network_transmit_bytes_per_second"))
        #expect(HostMetricsExposition.render([]).isEmpty)
    }

    @Test func promtoolAcceptsTheText() async throws {
        var many = Self.db
        many.disks.append(.init(mount: "/", device: "/dev/sda1", fsType: "xfs", usedBytes: 10, totalBytes: 100))
        many.network.append(.init(name: "wlan0", rxBytesPerSecond: .infinity, txBytesPerSecond: .nan))
        let text = HostMetricsExposition.render([
            (node: "web-1", sample: Self.web), (node: "db-1", sample: many), (node: "node \"quoted\" \\ \n", sample: Self.web),
        ])
        let (status, output) = try await Promtool.check(text)
        #expect(status == 0, "promtool check metrics: \(output)\n\(text)")
    }
}
