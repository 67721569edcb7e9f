import CapstanCore
import Foundation

/// The latest host sample of every node in the Prometheus text format 0.0.4, as served at
/// `/v1/nodes/metrics`.
///
/// Every metric is a gauge named `capstan_node_*` in base units and labelled `node`; filesystem
/// metrics add `mount`, `device` and `fstype`, network metrics `interface`. CPU use is a ratio from
/// 0 to 1 (the sample's percent divided by 100), as Prometheus naming asks. The time of the sample
/// is a metric of its own rather than a line timestamp, so a scrape always stores the values and a
/// node whose agent went quiet shows as an old timestamp.
enum HostMetricsExposition {
    /// The `Content-Type` of the rendered text.
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Renders the samples, nodes sorted by name, filesystems by mount point and interfaces by
    /// name, so equal input gives equal text.
    ///
    /// - Parameter samples: One entry per node, with its latest sample.
    /// - Returns: A `# HELP` and a `# TYPE` line per metric followed by its samples; metrics no
    ///   node has a value for (nil rates, no disks) are left out. Empty for no samples, otherwise
    ///   ending with a newline.
    static func render(_ samples: [(node: String, sample: HostSample)]) -> String {
        let nodes = samples.sorted { $0.node < $1.node }
        var text = ""
        for metric in metrics {
            let lines = nodes.flatMap { node, sample in
                metric.series(sample).map { labels, value in
                    let labelText = ([("node", node)] + labels).map { "\($0)=\"\(escape($1))\"" }.joined(separator: ",")
                    return "\(metric.name){\(labelText)} \(value)\n"
                }
            }
            guard !lines.isEmpty else { continue }
            text += "# HELP \(metric.name) \(metric.help)\n# TYPE \(metric.name) gauge\n" + lines.joined()
        }
        return text
    }

    /// Escapes a label value: backslash, double quote and line feed.
    static func escape(_ value: String) -> String {
        var escaped = ""
        // By scalar, not Character: "\r\n" is one Character and would hide its line feed.
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\\": escaped += #"\\"#
            case "\"": escaped += #"\""#
            case "\n": escaped += #"\n"#
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    /// A sample value as the text format spells it.
    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Inf" : "+Inf" }
        return "\(value)"
    }

    /// One metric: its name, help text and the labelled values one sample gives it.
    private struct Metric: Sendable {
        var name: String
        var help: String
        var series: @Sendable (HostSample) -> [(labels: [(String, String)], value: String)]
    }

    private static let metrics: [Metric] = [
        node("metrics_sample_timestamp_seconds", "Unix time at which the node's agent took the sample.") {
            format($0.time.timeIntervalSince1970)
        },
        node("cpu_busy_ratio", "Share of all CPUs' time spent neither idle nor waiting for I/O since the previous sample, 0 to 1.") {
            $0.cpuPercent.map { format($0 / 100) }
        },
        node("load1", "Load average over 1 minute: runnable and uninterruptible tasks, not divided by CPUs.") { format($0.load1) },
        node("load5", "Load average over 5 minutes.") { format($0.load5) },
        node("load15", "Load average over 15 minutes.") { format($0.load15) },
        node("memory_used_bytes", "Memory in use: MemTotal - MemAvailable.") { "\($0.memoryUsedBytes)" },
        node("memory_total_bytes", "Memory the kernel can use: MemTotal.") { "\($0.memoryTotalBytes)" },
        node("swap_used_bytes", "Swap in use: SwapTotal - SwapFree.") { "\($0.swapUsedBytes)" },
        node("swap_total_bytes", "Swap configured: SwapTotal.") { "\($0.swapTotalBytes)" },
        filesystem("filesystem_used_bytes", "Bytes in use on the filesystem, reserved blocks included, as df reports.") {
            $0.usedBytes
        },
        filesystem("filesystem_size_bytes", "Size of the filesystem, as df reports.") { $0.totalBytes },
        interface("network_receive_bytes_per_second", "Bytes received per second since the previous sample.") {
            $0.rxBytesPerSecond
        },
        interface("network_transmit_bytes_per_second", "Bytes sent per second since the previous sample.") {
            $0.txBytesPerSecond
        },
    ]

    /// A metric with one value per node, none when `value` is nil.
    private static func node(_ name: String, _ help: String, _ value: @escaping @Sendable (HostSample) -> String?) -> Metric {
        Metric(name: "capstan_node_" + name, help: help) { sample in value(sample).map { [([], $0)] } ?? [] }
    }

    /// A metric with one value per mounted filesystem.
    private static func filesystem(_ name: String, _ help: String, _ value: @escaping @Sendable (HostSample.Disk) -> Int64) -> Metric {
        Metric(name: "capstan_node_" + name, help: help) { sample in
            sample.disks.sorted { $0.mount < $1.mount }.map { disk in
                ([("mount", disk.mount), ("device", disk.device), ("fstype", disk.fsType)], "\(value(disk))")
            }
        }
    }

    /// A metric with one value per network interface, none where `value` is nil.
    private static func interface(
        _ name: String, _ help: String, _ value: @escaping @Sendable (HostSample.Interface) -> Double?
    ) -> Metric {
        Metric(name: "capstan_node_" + name, help: help) { sample in
            sample.network.sorted { $0.name < $1.name }.compactMap { interface in
                value(interface).map { ([("interface", interface.name)], format($0)) }
            }
        }
    }
}
