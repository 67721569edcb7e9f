import CapstanCore
import CapstanTesting
import Foundation
import Testing

@testable import CapstanAgent

/// Host metrics read from /proc: each file's parser, the rates between two samples, and the
/// real host this runs on.
@Suite("Host metrics")
struct HostMetricsTests {
    typealias Sampler = HostMetricsSampler

    static let stat = """
        cpu  10000 200 3000 80000 1000 0 500 300 0 0
        cpu0 5000 100 1500 40000 500 0 250 150 0 0
        cpu1 5000 100 1500 40000 500 0 250 150 0 0
        intr 1234567 9 0 0 0
        ctxt 9876543
        btime 1700000000
        processes 43210
        procs_running 2
        procs_blocked 0
        softirq 555555 0 11 22 33 44 55 66 77 88 99

        """

    /// `stat` 20 s of ticks later: 600 user, 200 system, 1000 idle and 200 iowait more.
    static let laterStat = """
        cpu  10600 200 3200 81000 1200 0 500 300 0 0
        cpu0 5300 100 1600 40500 600 0 250 150 0 0
        cpu1 5300 100 1600 40500 600 0 250 150 0 0
        btime 1700000000

        """

    static let meminfo = """
        MemTotal:        8048576 kB
        MemFree:          512000 kB
        MemAvailable:    6048576 kB
        Buffers:          102400 kB
        Cached:          4096000 kB
        SwapCached:            0 kB
        SwapTotal:       2097148 kB
        SwapFree:        1048574 kB
        Dirty:               128 kB
        HugePages_Total:       0
        HugePages_Free:        0
        Hugepagesize:       2048 kB
        DirectMap4k:      180000 kB

        """

    static let mounts = #"""
        sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
        proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
        udev /dev devtmpfs rw,nosuid,relatime,size=4008988k,nr_inodes=1002247,mode=755 0 0
        devpts /dev/pts devpts rw,nosuid,noexec,relatime,gid=5,mode=620,ptmxmode=000 0 0
        tmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime,size=804860k,mode=755 0 0
        /dev/sda2 / ext4 rw,relatime,errors=remount-ro 0 0
        cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0
        /dev/sda1 /boot/efi vfat rw,relatime,fmask=0077,dmask=0077,codepage=437 0 0
        /dev/sdb1 /srv/my\040data\134x ext4 rw,relatime 0 0
        /dev/sdc1 /scratch ext4 rw,relatime 0 0
        tmpfs /scratch tmpfs rw,relatime 0 0
        /dev/sdd1 /var/lib/data ext4 rw,relatime 0 0
        /dev/sde1 /var/lib/data xfs rw,relatime,attr2,inode64 0 0
        overlay /var/lib/docker/overlay2/abc/merged overlay rw,relatime,lowerdir=/l,upperdir=/u,workdir=/w 0 0
        nsfs /run/docker/netns/1a2b nsfs rw 0 0

        """#

    static let netDev = """
        Inter-|   Receive                                                |  Transmit
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
            lo: 1234567    9876    0    0    0     0          0         0  1234567    9876    0    0    0     0       0          0
          eth0: 500000000  400000    0   12    0     0          0       300 200000000  150000    0    0    0     0       0          0
        wlan0:1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0

        """

    /// `netDev` 15 s later: eth0 received 1.5 MB and sent 300 kB more; wlan0's counters were reset.
    static let laterNetDev = """
        Inter-|   Receive                                                |  Transmit
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
            lo: 1234999    9880    0    0    0     0          0         0  1234999    9880    0    0    0     0       0          0
          eth0: 501500000  401000    0   12    0     0          0       300 200300000  150200    0    0    0     0       0          0
         wlan0:     100       1    0    0    0     0          0         0     3000      30    0    0    0     0       0          0

        """

    @Test func statGivesBusyAndTotalTicksOfTheAggregateLine() throws {
        // total = 10000+200+3000+80000+1000+0+500+300; busy leaves out idle 80000 and iowait 1000.
        #expect(try Sampler.parseStat(Self.stat) == Sampler.CPUTimes(busy: 14000, total: 95000))
    }

    @Test func loadAverageReadsTheFirstThreeFields() throws {
        #expect(try Sampler.parseLoadAverage("0.52 1.07 2.50 3/412 98765\n") == Sampler.LoadAverage(one: 0.52, five: 1.07, fifteen: 2.5))
    }

    @Test func memInfoIsInBytesWithUsedMeaningNotAvailable() throws {
        let memory = try Sampler.parseMemInfo(Self.meminfo)
        #expect(memory.totalBytes == 8_048_576 * 1024)
        #expect(memory.usedBytes == 2_000_000 * 1024)
        #expect(memory.swapTotalBytes == 2_097_148 * 1024)
        #expect(memory.swapUsedBytes == 1_048_574 * 1024)
    }

    @Test func mountsKeepRealFilesystemsOnePerMountPointWithEscapesDecoded() throws {
        let mounts = try Sampler.parseMounts(Self.mounts)
        #expect(
            mounts == [
                .init(device: "/dev/sda2", path: "/", fsType: "ext4"),
                .init(device: "/dev/sda1", path: "/boot/efi", fsType: "vfat"),
                .init(device: "/dev/sdb1", path: #"/srv/my data\x"#, fsType: "ext4"),
                // Over-mounted: the later filesystem is the one visible there.
                .init(device: "/dev/sde1", path: "/var/lib/data", fsType: "xfs"),
                .init(device: "overlay", path: "/var/lib/docker/overlay2/abc/merged", fsType: "overlay"),
            ])
        // /scratch is hidden under a tmpfs, so sizing it would size the tmpfs.
        #expect(!mounts.contains { $0.path == "/scratch" })
    }

    @Test func escapesThatAreNotThreeOctalDigitsStayAsWritten() {
        #expect(Sampler.unescape(#"/a\011b\012c"#) == "/a\tb\nc")
        #expect(Sampler.unescape(#"/a\09b\4"#) == #"/a\09b\4"#)
        #expect(Sampler.unescape(#"/caf\303\251"#) == "/café")
    }

    @Test func netDevReadsTheByteColumnsAndSkipsLoopback() throws {
        #expect(
            try Sampler.parseNetDev(Self.netDev) == [
                .init(name: "eth0", rxBytes: 500_000_000, txBytes: 200_000_000),
                .init(name: "wlan0", rxBytes: 1000, txBytes: 2000),
            ])
    }

    @Test func malformedFilesNameTheFileAndTheLine() {
        func check(
            _ file: String, line: Int?, mentioning word: String, sourceLocation: SourceLocation = #_sourceLocation,
            _ parse: () throws -> Void
        ) {
            let error = #expect(throws: Sampler.FileError.self, sourceLocation: sourceLocation) { try parse() }
            #expect(error?.file == file, sourceLocation: sourceLocation)
            #expect(error?.line == line, sourceLocation: sourceLocation)
            #expect(error?.description.contains(file) == true, sourceLocation: sourceLocation)
            #expect(error?.description.contains(word) == true, "\(String(describing: error))", sourceLocation: sourceLocation)
        }
        check("/proc/stat", line: 2, mentioning: "12x") { _ = try Sampler.parseStat("intr 1 2\ncpu  1 2 12x 4 5 6 7 8\n") }
        check("/proc/stat", line: 1, mentioning: "cpu") { _ = try Sampler.parseStat("cpu 1 2\n") }
        check("/proc/stat", line: nil, mentioning: "cpu") { _ = try Sampler.parseStat("cpu0 1 2 3 4 5 6 7 8\n") }
        check("/proc/loadavg", line: 1, mentioning: "load") { _ = try Sampler.parseLoadAverage("0.5 high 0.1 1/2 3\n") }
        check("/proc/loadavg", line: 1, mentioning: "load") { _ = try Sampler.parseLoadAverage("") }
        check("/proc/meminfo", line: 2, mentioning: "lots") { _ = try Sampler.parseMemInfo("MemTotal: 1 kB\nMemFree: lots kB\n") }
        check("/proc/meminfo", line: 1, mentioning: "MiB") { _ = try Sampler.parseMemInfo("MemTotal: 1 MiB\n") }
        check("/proc/meminfo", line: nil, mentioning: "MemAvailable") {
            _ = try Sampler.parseMemInfo("MemTotal: 1 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n")
        }
        check("/proc/self/mounts", line: 2, mentioning: "/dev/sda1") {
            _ = try Sampler.parseMounts("proc /proc proc rw 0 0\n/dev/sda1 /\n")
        }
        check("/proc/net/dev", line: 3, mentioning: "eth0") { _ = try Sampler.parseNetDev("a|b\nc|d\neth0 1 2 3\n") }
        check("/proc/net/dev", line: 1, mentioning: "eth0") { _ = try Sampler.parseNetDev("eth0: 1 2 3 4 5 6 7 8\n") }
        check("/proc/net/dev", line: 1, mentioning: "8 x") { _ = try Sampler.parseNetDev("x: 1 2 3 4 5 6 7 8 x\n") }
    }

    @Test func aMissingFileIsNamedInTheError() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var sampler = Sampler(root: directory.path) { _ in nil }
        let error = #expect(throws: Sampler.FileError.self) { _ = try sampler.sample() }
        #expect(error?.file == directory.file("proc/stat"))
        #expect(error?.description.contains(directory.file("proc/stat")) == true)
        #expect(error?.message.contains("No such file") == true, "\(String(describing: error))")
    }

    @Test func cpuAndNetworkRatesComeFromTwoSamples() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try write(
            [
                "proc/stat": Self.stat, "proc/loadavg": "0.52 1.07 2.50 3/412 98765\n", "proc/meminfo": Self.meminfo,
                "proc/self/mounts": Self.mounts, "proc/net/dev": Self.netDev,
            ], under: directory)
        let root = directory.path
        // Sizes only paths under the root, so a mount looked up without it would go missing.
        var sampler = Sampler(root: root) { path in
            path.hasPrefix(root + "/") && path != root + "/boot/efi" ? .init(usedBytes: 1000, totalBytes: 4000) : nil
        }
        let start = Date(timeIntervalSince1970: 1_700_000_000)

        let first = try sampler.sample(now: start)
        #expect(first.time == start)
        #expect(first.cpuPercent == nil)
        #expect(first.network.map(\.name) == ["eth0", "wlan0"])
        #expect(first.network.allSatisfy { $0.rxBytesPerSecond == nil && $0.txBytesPerSecond == nil })
        #expect(first.load1 == 0.52 && first.load5 == 1.07 && first.load15 == 2.5)
        #expect(first.memoryUsedBytes == 2_000_000 * 1024 && first.memoryTotalBytes == 8_048_576 * 1024)
        #expect(first.swapUsedBytes == 1_048_574 * 1024 && first.swapTotalBytes == 2_097_148 * 1024)
        // The mount that cannot be sized is skipped.
        #expect(first.disks.map(\.mount) == ["/", #"/srv/my data\x"#, "/var/lib/data", "/var/lib/docker/overlay2/abc/merged"])
        #expect(first.disks[0] == HostSample.Disk(mount: "/", device: "/dev/sda2", fsType: "ext4", usedBytes: 1000, totalBytes: 4000))

        try write(["proc/stat": Self.laterStat, "proc/net/dev": Self.laterNetDev], under: directory)
        let second = try sampler.sample(now: start.addingTimeInterval(15))
        // 800 busy ticks (600 user + 200 system) out of 2000.
        #expect(second.cpuPercent == 40)
        #expect(
            second.network == [
                HostSample.Interface(name: "eth0", rxBytesPerSecond: 100_000, txBytesPerSecond: 20_000),
                HostSample.Interface(name: "wlan0", rxBytesPerSecond: nil, txBytesPerSecond: 66.66666666666667),
            ])
    }

    @Test func aFailedSampleKeepsThePreviousCounters() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try write(
            [
                "proc/stat": Self.stat, "proc/loadavg": "0.52 1.07 2.50 3/412 98765\n", "proc/meminfo": Self.meminfo,
                "proc/mounts": Self.mounts, "proc/net/dev": Self.netDev,
            ], under: directory)
        var sampler = Sampler(root: directory.path) { _ in nil }
        let start = Date(timeIntervalSince1970: 1_700_000_000)
        _ = try sampler.sample(now: start)
        try write(["proc/stat": Self.laterStat, "proc/loadavg": "garbage\n"], under: directory)
        #expect(throws: Sampler.FileError.self) { _ = try sampler.sample(now: start.addingTimeInterval(5)) }
        try write(["proc/loadavg": "0.5 0.5 0.5 1/2 3\n", "proc/net/dev": Self.laterNetDev], under: directory)
        let second = try sampler.sample(now: start.addingTimeInterval(15))
        #expect(second.cpuPercent == 40)
        #expect(second.network.first?.rxBytesPerSecond == 100_000)
        #expect(second.disks.isEmpty)
    }

    @Test func mountPointsAreSizedWithStatvfsUnderTheRoot() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try write(
            [
                "proc/stat": Self.stat, "proc/loadavg": "0.52 1.07 2.50 3/412 98765\n", "proc/meminfo": Self.meminfo,
                "proc/mounts": "/dev/sda2 / ext4 rw 0 0\n/dev/sdz9 /not-there ext4 rw 0 0\n", "proc/net/dev": Self.netDev,
            ], under: directory)
        var sampler = Sampler(root: directory.path)
        let disks = try sampler.sample().disks
        // "/" is the fixture directory itself, which statvfs can size; "/not-there" is skipped.
        #expect(disks.map(\.mount) == ["/"])
        let disk = try #require(disks.first)
        #expect(disk.totalBytes > 0)
        #expect((0...disk.totalBytes).contains(disk.usedBytes))
    }

    @Test(.timeLimit(.minutes(1)))
    func theRealHostGivesSaneValues() async throws {
        var sampler = Sampler()
        let first = try sampler.sample()
        #expect(first.cpuPercent == nil)
        #expect(first.memoryTotalBytes > 0)
        #expect((0...first.memoryTotalBytes).contains(first.memoryUsedBytes))
        #expect((0...first.swapTotalBytes).contains(first.swapUsedBytes))
        #expect(first.load1 >= 0 && first.load5 >= 0 && first.load15 >= 0)
        #expect(first.disks.contains { $0.totalBytes > 0 }, "no disk in \(first.disks)")
        #expect(first.disks.allSatisfy { (0...$0.totalBytes).contains($0.usedBytes) }, "\(first.disks)")
        #expect(!first.network.contains { $0.name == "lo" })

        // The CPU counters advance in clock ticks (10 ms), so the second sample may need to wait for one.
        var second: HostSample?
        try await eventually("a second sample with a CPU share") {
            second = try sampler.sample()
            return second?.cpuPercent != nil
        }
        let percent = try #require(second?.cpuPercent)
        #expect((0...100).contains(percent))
    }

    private func write(_ files: [String: String], under directory: TemporaryDirectory) throws {
        for (path, text) in files {
            let file = directory.file(path)
            try FileManager.default.createDirectory(
                atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: file, atomically: true, encoding: .utf8)
        }
    }
}
