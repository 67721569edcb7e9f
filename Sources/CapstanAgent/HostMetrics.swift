import CapstanCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Samples the host's CPU, load, memory, filesystems and network from `/proc` and `statvfs`.
///
/// CPU use and network rates are differences between two samples, so the sampler keeps the
/// counters of its last successful sample; the first sample has no rates. Sampling reads files
/// and calls `statvfs`, which blocks (for long on a hung network mount): run it off the event loop.
struct HostMetricsSampler: Sendable {
    /// A /proc file that could not be read, or whose content is not in the kernel's format.
    struct FileError: Error, CustomStringConvertible, Sendable, Equatable {
        /// The path read ("/proc/stat", or a fixture's path in tests).
        var file: String
        /// 1-based line of the problem; nil when the file could not be read or lacks something.
        var line: Int?
        var message: String

        var description: String {
            if let line { "\(file), line \(line): \(message)" } else { "\(file): \(message)" }
        }
    }

    /// The aggregate CPU counters of /proc/stat, in clock ticks since boot.
    struct CPUTimes: Equatable, Sendable {
        /// Ticks spent on anything but idle and I/O wait.
        var busy: UInt64
        /// All ticks: user, nice, system, idle, iowait, irq, softirq and steal.
        var total: UInt64
    }

    /// The three load averages of /proc/loadavg.
    struct LoadAverage: Equatable, Sendable {
        var one: Double
        var five: Double
        var fifteen: Double
    }

    /// Memory and swap from /proc/meminfo, in bytes.
    struct Memory: Equatable, Sendable {
        var usedBytes: Int64
        var totalBytes: Int64
        var swapUsedBytes: Int64
        var swapTotalBytes: Int64
    }

    /// A line of /proc/self/mounts, escapes decoded.
    struct Mount: Equatable, Sendable {
        var device: String
        var path: String
        var fsType: String
    }

    /// The byte counters of one interface in /proc/net/dev, counted since it appeared.
    struct InterfaceCounters: Equatable, Sendable {
        var name: String
        var rxBytes: UInt64
        var txBytes: UInt64
    }

    /// The used and total bytes of one filesystem.
    struct Usage: Equatable, Sendable {
        var usedBytes: Int64
        var totalBytes: Int64
    }

    /// Filesystem types that hold no data of their own, left out of `disks`. Overlay stays: it is
    /// the root of every container and its size is the size of the disk under it.
    static let pseudoFilesystems: Set<String> = [
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs",
        "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc", "pstore", "ramfs", "rpc_pipefs",
        "securityfs", "selinuxfs", "sysfs", "tmpfs", "tracefs",
    ]

    /// The directory holding `proc/`: "/" on a host, a fixture directory in tests.
    let root: String
    /// Sizes the filesystem at a mount point (already joined with `root`); nil skips the mount.
    let filesystemUsage: @Sendable (String) -> Usage?
    /// The counters of the last successful sample, for the next one's rates.
    private var previous: (time: Date, cpu: CPUTimes, network: [String: InterfaceCounters])?

    /// - Parameters:
    ///   - root: The directory under which `proc/stat`, `proc/loadavg`, `proc/meminfo`,
    ///     `proc/self/mounts` (or `proc/mounts`) and `proc/net/dev` are read.
    ///   - filesystemUsage: Sizes the filesystem mounted at a path; the default calls `statvfs`.
    ///     Tests pass fixed sizes for fixture mount tables.
    init(root: String = "/", filesystemUsage: @escaping @Sendable (String) -> Usage? = HostMetricsSampler.statvfsUsage) {
        self.root = root
        self.filesystemUsage = filesystemUsage
    }

    /// Reads every source and computes rates against the previous sample.
    ///
    /// - Parameter now: The sample's time; network rates divide by the time since the previous one.
    /// - Returns: The sample; `cpuPercent` and the network rates are nil on the first call.
    /// - Throws: `FileError` naming the file (and line) that is missing or malformed. A mount
    ///   point that cannot be sized is skipped instead. A failed sample leaves the previous
    ///   counters in place.
    mutating func sample(now: Date = Date()) throws(FileError) -> HostSample {
        let cpu = try parse("proc/stat", with: Self.parseStat)
        let load = try parse("proc/loadavg", with: Self.parseLoadAverage)
        let memory = try parse("proc/meminfo", with: Self.parseMemInfo)
        let mountTable = FileManager.default.fileExists(atPath: Self.join(root, "/proc/self/mounts")) ? "proc/self/mounts" : "proc/mounts"
        let mounts = try parse(mountTable, with: Self.parseMounts)
        let counters = try parse("proc/net/dev", with: Self.parseNetDev)

        var cpuPercent: Double?
        if let previous {
            let busy = Double(cpu.busy) - Double(previous.cpu.busy)
            let total = Double(cpu.total) - Double(previous.cpu.total)
            // The iowait counter may go backwards on tickless kernels, so busy is clamped.
            if total > 0 { cpuPercent = min(max(busy / total * 100, 0), 100) }
        }
        let elapsed = previous.map { now.timeIntervalSince($0.time) } ?? 0
        let network = counters.map { interface in
            guard elapsed > 0, let before = previous?.network[interface.name] else {
                return HostSample.Interface(name: interface.name, rxBytesPerSecond: nil, txBytesPerSecond: nil)
            }
            return HostSample.Interface(
                name: interface.name,
                rxBytesPerSecond: Self.rate(from: before.rxBytes, to: interface.rxBytes, seconds: elapsed),
                txBytesPerSecond: Self.rate(from: before.txBytes, to: interface.txBytes, seconds: elapsed))
        }
        let disks = mounts.compactMap { mount -> HostSample.Disk? in
            guard let usage = filesystemUsage(Self.join(root, mount.path)) else { return nil }
            return HostSample.Disk(
                mount: mount.path, device: mount.device, fsType: mount.fsType, usedBytes: usage.usedBytes,
                totalBytes: usage.totalBytes)
        }
        previous = (now, cpu, Dictionary(counters.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last }))
        return HostSample(
            time: now, cpuPercent: cpuPercent, load1: load.one, load5: load.five, load15: load.fifteen,
            memoryUsedBytes: memory.usedBytes, memoryTotalBytes: memory.totalBytes, swapUsedBytes: memory.swapUsedBytes,
            swapTotalBytes: memory.swapTotalBytes, disks: disks, network: network)
    }

    /// The aggregate `cpu` line of /proc/stat: `cpu  user nice system idle iowait irq softirq steal ...`.
    ///
    /// Guest time is already counted in user and nice, so the columns after steal are ignored.
    static func parseStat(_ text: String, file: String = "/proc/stat") throws(FileError) -> CPUTimes {
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let fields = line.split(whereSeparator: \.isWhitespace)
            guard fields.first == "cpu" else { continue }
            let columns = fields.dropFirst().prefix(8)
            let ticks = columns.compactMap { UInt64($0) }
            guard ticks.count >= 4, ticks.count == columns.count else {
                throw FileError(
                    file: file, line: index + 1, message: "expected \"cpu user nice system idle ...\" counters, found \"\(line)\"")
            }
            let total = ticks.reduce(0, +)
            let idle = ticks[3] + (ticks.count > 4 ? ticks[4] : 0)
            return CPUTimes(busy: total - idle, total: total)
        }
        throw FileError(file: file, line: nil, message: "no aggregate \"cpu\" line")
    }

    /// /proc/loadavg: `0.80 1.32 2.38 1/108 4342`.
    static func parseLoadAverage(_ text: String, file: String = "/proc/loadavg") throws(FileError) -> LoadAverage {
        let fields = text.split(whereSeparator: \.isWhitespace).prefix(3).compactMap { Double($0) }
        guard fields.count == 3, fields.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            let line = text.split(separator: "\n", omittingEmptySubsequences: false).first ?? ""
            throw FileError(file: file, line: 1, message: "expected three load averages, found \"\(line)\"")
        }
        return LoadAverage(one: fields[0], five: fields[1], fifteen: fields[2])
    }

    /// /proc/meminfo: `NAME:   VALUE kB` lines (a few counts have no unit).
    static func parseMemInfo(_ text: String, file: String = "/proc/meminfo") throws(FileError) -> Memory {
        var bytes: [Substring: Int64] = [:]
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            let malformed = FileError(file: file, line: index + 1, message: "expected \"NAME: VALUE kB\", found \"\(line)\"")
            guard let colon = line.firstIndex(of: ":") else { throw malformed }
            let fields = line[line.index(after: colon)...].split(whereSeparator: \.isWhitespace)
            guard let number = fields.first.flatMap({ Int64($0) }), fields.count == 1 || (fields.count == 2 && fields[1] == "kB") else {
                throw malformed
            }
            let (value, overflow) = number.multipliedReportingOverflow(by: fields.count == 2 ? 1024 : 1)
            guard !overflow else { throw malformed }
            bytes[line[..<colon]] = value
        }
        func value(_ name: Substring) throws(FileError) -> Int64 {
            guard let value = bytes[name] else { throw FileError(file: file, line: nil, message: "no \(name) line") }
            return value
        }
        let total = try value("MemTotal")
        let swapTotal = try value("SwapTotal")
        return Memory(
            usedBytes: max(0, total - (try value("MemAvailable"))), totalBytes: total,
            swapUsedBytes: max(0, swapTotal - (try value("SwapFree"))), swapTotalBytes: swapTotal)
    }

    /// /proc/self/mounts: `DEVICE MOUNT-POINT TYPE OPTIONS DUMP PASS`, with space, tab, newline
    /// and backslash in the first two written as `\040`-style octal escapes.
    ///
    /// - Returns: One entry per mount point, in the order they first appear, for the last
    ///   filesystem mounted there (the one that is visible); pseudo filesystems left out.
    static func parseMounts(_ text: String, file: String = "/proc/self/mounts") throws(FileError) -> [Mount] {
        var visible: [String: Mount] = [:]
        var order: [String] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            let fields = line.split(separator: " ")
            guard fields.count >= 3 else {
                throw FileError(file: file, line: index + 1, message: "expected \"DEVICE MOUNT-POINT TYPE OPTIONS\", found \"\(line)\"")
            }
            let mount = Mount(device: unescape(fields[0]), path: unescape(fields[1]), fsType: unescape(fields[2]))
            if visible.updateValue(mount, forKey: mount.path) == nil { order.append(mount.path) }
        }
        return order.compactMap { visible[$0] }.filter { !pseudoFilesystems.contains($0.fsType) }
    }

    /// /proc/net/dev: two header lines, then `NAME: RX-BYTES RX-PACKETS ... TX-BYTES ...` with
    /// eight receive and eight transmit columns. Loopback is left out.
    static func parseNetDev(_ text: String, file: String = "/proc/net/dev") throws(FileError) -> [InterfaceCounters] {
        var interfaces: [InterfaceCounters] = []
        // The header lines are the ones with column separators.
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.isEmpty && !line.contains("|") {
            let malformed = FileError(
                file: file, line: index + 1, message: "expected \"NAME: RX-BYTES ... TX-BYTES ...\", found \"\(line)\"")
            // Interface names cannot contain ":", and old kernels put no space after it.
            guard let colon = line.firstIndex(of: ":") else { throw malformed }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces)
            let counters = line[line.index(after: colon)...].split(whereSeparator: \.isWhitespace)
            guard !name.isEmpty, counters.count >= 9, let rx = UInt64(counters[0]), let tx = UInt64(counters[8]) else {
                throw malformed
            }
            if name != "lo" { interfaces.append(InterfaceCounters(name: name, rxBytes: rx, txBytes: tx)) }
        }
        return interfaces
    }

    /// The size of the filesystem at `path` as `df` reports it; nil when `statvfs` fails or the
    /// filesystem has no blocks (a pseudo filesystem not in `pseudoFilesystems`).
    static func statvfsUsage(_ path: String) -> Usage? {
        var info = statvfs()
        guard statvfs(path, &info) == 0, info.f_blocks > 0 else { return nil }
        let blockSize = Int64(clamping: info.f_frsize)
        let used = info.f_blocks - min(info.f_bfree, info.f_blocks)
        return Usage(usedBytes: Int64(clamping: used) * blockSize, totalBytes: Int64(clamping: info.f_blocks) * blockSize)
    }

    /// Decodes the kernel's `\ooo` octal escapes; a backslash not followed by three octal digits stays.
    static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        let source = Array(field.utf8)
        var bytes: [UInt8] = []
        var index = 0
        while index < source.count {
            let digits = source.dropFirst(index + 1).prefix(3).map { Int($0) - Int(UInt8(ascii: "0")) }
            let value = digits.reduce(0) { $0 * 8 + $1 }
            if source[index] == UInt8(ascii: "\\"), digits.count == 3, digits.allSatisfy((0...7).contains), value <= 255 {
                bytes.append(UInt8(value))
                index += 4
            } else {
                bytes.append(source[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads `relative` under `root` and parses it, naming the file when either fails.
    private func parse<Value>(
        _ relative: String, with parser: (String, String) throws(FileError) -> Value
    ) throws(FileError) -> Value {
        let file = Self.join(root, "/" + relative)
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch {
            // Foundation wraps the errno in a generic message; the errno alone says it better.
            var reason = error.localizedDescription
            if let underlying = ((error as NSError).userInfo[NSUnderlyingErrorKey] as? any Error).map({ $0 as NSError }),
                underlying.domain == NSPOSIXErrorDomain
            {
                reason = String(cString: strerror(Int32(underlying.code)))
            }
            throw FileError(file: file, line: nil, message: "cannot be read: \(reason)")
        }
        // Mount points may hold bytes that are not UTF-8; they are repaired rather than refused.
        return try parser(String(decoding: data, as: UTF8.self), file)
    }

    /// `path` (absolute) under `root`; just `path` when `root` is "/".
    private static func join(_ root: String, _ path: String) -> String {
        var base = root
        while base.hasSuffix("/") { base.removeLast() }
        return base + path
    }

    private static func rate(from before: UInt64, to after: UInt64, seconds: TimeInterval) -> Double? {
        // A counter that went backwards was reset (the interface was recreated): no rate this time.
        after >= before ? Double(after - before) / seconds : nil
    }
}
