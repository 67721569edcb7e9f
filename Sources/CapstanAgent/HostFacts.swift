import CapstanCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The facts of the host the agent runs on, read from the system (`uname`, `/proc`, `/etc`).
public enum HostFacts {
    public static func collect() -> NodeFacts {
        var system = utsname()
        uname(&system)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { bytes in
                String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        return NodeFacts(
            hostname: ProcessInfo.processInfo.hostName.isEmpty ? field(system.nodename) : ProcessInfo.processInfo.hostName,
            os: operatingSystem(fallback: field(system.sysname)),
            kernel: field(system.release),
            arch: field(system.machine),
            cpuCount: ProcessInfo.processInfo.activeProcessorCount,
            memoryBytes: Int64(ProcessInfo.processInfo.physicalMemory),
            addresses: addresses(),
            agentVersion: CapstanVersion.current,
            bootTime: bootTime())
    }

    /// `PRETTY_NAME` from /etc/os-release ("Debian GNU/Linux 12 (bookworm)").
    static func operatingSystem(fallback: String) -> String {
        guard let text = try? String(contentsOfFile: "/etc/os-release", encoding: .utf8) else { return fallback }
        for line in text.split(separator: "\n") where line.hasPrefix("PRETTY_NAME=") {
            return String(line.dropFirst("PRETTY_NAME=".count)).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        return fallback
    }

    /// From `btime` in /proc/stat.
    static func bootTime() -> Date? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return TimeInterval(line.dropFirst("btime ".count)).map(Date.init(timeIntervalSince1970:))
        }
        return nil
    }

    /// The host's IPv4 and IPv6 addresses, loopback left out.
    static func addresses() -> [String] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var found: [String] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let address = entry.pointee.ifa_addr, entry.pointee.ifa_flags & UInt32(IFF_LOOPBACK) == 0 else { continue }
            let family = Int32(address.pointee.sa_family)
            guard family == AF_INET || family == AF_INET6 else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            let length = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
            if getnameinfo(address, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 {
                let text = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if !found.contains(text) { found.append(text) }
            }
        }
        return found
    }
}
