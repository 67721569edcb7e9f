import Foundation

/// The machine a report was measured on.
struct MachineInfo: Codable, Sendable {
    var cpu: String
    var cores: Int
    var memoryGiB: Double
    var kernel: String
    var operatingSystem: String
    /// Filesystem type, device and mount point holding the servers' data.
    var filesystem: String

    /// Describes this machine, with the filesystem that holds `directory`.
    static func current(dataDirectory directory: String) -> MachineInfo {
        MachineInfo(
            cpu: field("model name", in: "/proc/cpuinfo", separator: ":") ?? "unknown",
            cores: ProcessInfo.processInfo.activeProcessorCount,
            memoryGiB: (Double(ProcessInfo.processInfo.physicalMemory) / Double(1 << 30) * 10).rounded() / 10,
            kernel: read("/proc/sys/kernel/osrelease") ?? "unknown",
            operatingSystem: field("PRETTY_NAME", in: "/etc/os-release", separator: "=")?
                .trimmingCharacters(in: CharacterSet(charactersIn: "\"")) ?? "unknown",
            filesystem: filesystem(of: directory))
    }

    private static func read(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The value of the first `name<separator>value` line of a file.
    private static func field(_ name: String, in path: String, separator: Character) -> String? {
        guard let text = read(path) else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: separator, maxSplits: 1)
            if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name {
                return parts[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }

    /// The entry of /proc/self/mounts with the longest mount point containing `directory`.
    private static func filesystem(of directory: String) -> String {
        let path = URL(fileURLWithPath: directory).resolvingSymlinksInPath().path
        var best: (mountPoint: String, description: String)?
        for line in (read("/proc/self/mounts") ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 4 else { continue }
            let mountPoint = String(fields[1])
            let contains = mountPoint == "/" || path == mountPoint || path.hasPrefix(mountPoint + "/")
            if contains, mountPoint.count >= (best?.mountPoint.count ?? 0) {
                best = (mountPoint, "\(fields[2]) (\(fields[0]) on \(mountPoint), \(fields[3]))")
            }
        }
        return best?.description ?? "unknown"
    }
}
