import Foundation

/// One reading of a host's resource use, taken by its agent every few seconds and kept by the
/// server for a while per node.
///
/// Rates (`cpuPercent`, the network rates) cover the interval since the agent's previous
/// sample, so the first sample after an agent starts has none.
public struct HostSample: Codable, Sendable, Hashable {
    /// One mounted filesystem, sized like `df` does.
    public struct Disk: Codable, Sendable, Hashable {
        /// Where it is mounted ("/", "/var/lib/data").
        public var mount: String
        /// What is mounted there, as the kernel lists it ("/dev/sda1", "overlay").
        public var device: String
        /// The filesystem type ("ext4", "xfs", "overlay").
        public var fsType: String
        /// Bytes in use, reserved blocks included: `(f_blocks - f_bfree) * f_frsize`.
        public var usedBytes: Int64
        /// Size in bytes: `f_blocks * f_frsize`.
        public var totalBytes: Int64

        public init(mount: String, device: String, fsType: String, usedBytes: Int64, totalBytes: Int64) {
            self.mount = mount
            self.device = device
            self.fsType = fsType
            self.usedBytes = usedBytes
            self.totalBytes = totalBytes
        }
    }

    /// One network interface other than loopback.
    public struct Interface: Codable, Sendable, Hashable {
        /// The kernel's name for it ("eth0", "enp3s0").
        public var name: String
        /// Bytes per second received since the previous sample; nil on the first sample, for an
        /// interface that just appeared, or when its counter went backwards.
        public var rxBytesPerSecond: Double?
        /// Bytes per second sent since the previous sample; nil as for `rxBytesPerSecond`.
        public var txBytesPerSecond: Double?

        public init(name: String, rxBytesPerSecond: Double?, txBytesPerSecond: Double?) {
            self.name = name
            self.rxBytesPerSecond = rxBytesPerSecond
            self.txBytesPerSecond = txBytesPerSecond
        }
    }

    /// When the sample was taken, by the agent's clock.
    public var time: Date
    /// Percent (0-100) of all CPUs' time spent busy since the previous sample: everything but
    /// idle and I/O wait. Nil on the first sample.
    public var cpuPercent: Double?
    /// Load average over 1 minute: runnable plus uninterruptible tasks, not divided by CPUs.
    public var load1: Double
    /// Load average over 5 minutes.
    public var load5: Double
    /// Load average over 15 minutes.
    public var load15: Double
    /// Bytes of memory in use: `MemTotal - MemAvailable`, so reclaimable cache counts as free.
    public var memoryUsedBytes: Int64
    /// Bytes of memory the kernel can use (`MemTotal`).
    public var memoryTotalBytes: Int64
    /// Bytes of swap in use: `SwapTotal - SwapFree`.
    public var swapUsedBytes: Int64
    /// Bytes of swap configured (`SwapTotal`); 0 without swap.
    public var swapTotalBytes: Int64
    /// Real filesystems, one per mount point; pseudo filesystems (proc, tmpfs, cgroup ...) are left out.
    public var disks: [Disk]
    /// Network interfaces, loopback left out.
    public var network: [Interface]

    public init(
        time: Date, cpuPercent: Double?, load1: Double, load5: Double, load15: Double,
        memoryUsedBytes: Int64, memoryTotalBytes: Int64, swapUsedBytes: Int64, swapTotalBytes: Int64,
        disks: [Disk], network: [Interface]
    ) {
        self.time = time
        self.cpuPercent = cpuPercent
        self.load1 = load1
        self.load5 = load5
        self.load15 = load15
        self.memoryUsedBytes = memoryUsedBytes
        self.memoryTotalBytes = memoryTotalBytes
        self.swapUsedBytes = swapUsedBytes
        self.swapTotalBytes = swapTotalBytes
        self.disks = disks
        self.network = network
    }
}

/// One point of a node's metrics history: the figures `node metrics` charts over the last hour.
public struct HostPoint: Codable, Sendable, Hashable {
    public var time: Date
    public var cpuPercent: Double?
    public var load1: Double
    public var memoryUsedBytes: Int64
    /// Received and sent over all interfaces, bytes per second.
    public var rxBytesPerSecond: Double?
    public var txBytesPerSecond: Double?

    public init(
        time: Date, cpuPercent: Double?, load1: Double, memoryUsedBytes: Int64, rxBytesPerSecond: Double?, txBytesPerSecond: Double?
    ) {
        self.time = time
        self.cpuPercent = cpuPercent
        self.load1 = load1
        self.memoryUsedBytes = memoryUsedBytes
        self.rxBytesPerSecond = rxBytesPerSecond
        self.txBytesPerSecond = txBytesPerSecond
    }
}

/// A node's host metrics as the server keeps them: the latest sample, and the last hour.
public struct NodeMetricsInfo: Codable, Sendable, Hashable {
    public var node: String
    public var latest: HostSample?
    /// Oldest first.
    public var history: [HostPoint]

    public init(node: String, latest: HostSample?, history: [HostPoint]) {
        self.node = node
        self.latest = latest
        self.history = history
    }
}

/// `GET /v1/nodes/top`: the latest sample of every node that sent one.
public struct NodeTop: Codable, Sendable, Hashable {
    public struct Entry: Codable, Sendable, Hashable {
        public var node: String
        public var sample: HostSample

        public init(node: String, sample: HostSample) {
            self.node = node
            self.sample = sample
        }
    }

    public var items: [Entry]

    public init(items: [Entry]) {
        self.items = items
    }
}

extension HostSample {
    /// The fullest filesystem's share in use, 0–100.
    public var fullestDiskPercent: Double? {
        disks.filter { $0.totalBytes > 0 }.map { Double($0.usedBytes) * 100 / Double($0.totalBytes) }.max()
    }

    /// Received and sent over all interfaces, bytes per second.
    public var networkRates: (rx: Double?, tx: Double?) {
        let rx = network.compactMap(\.rxBytesPerSecond)
        let tx = network.compactMap(\.txBytesPerSecond)
        return (rx.isEmpty ? nil : rx.reduce(0, +), tx.isEmpty ? nil : tx.reduce(0, +))
    }

    public var point: HostPoint {
        let rates = networkRates
        return HostPoint(
            time: time, cpuPercent: cpuPercent, load1: load1, memoryUsedBytes: memoryUsedBytes, rxBytesPerSecond: rates.rx,
            txBytesPerSecond: rates.tx)
    }
}
