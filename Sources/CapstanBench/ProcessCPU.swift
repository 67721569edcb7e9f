import Foundation

/// CPU time (user + system) a process has used so far, from /proc; Linux only.
enum ProcessCPU {
    /// Clock ticks per second of the /proc counters; 100 on every common Linux configuration.
    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// Seconds of CPU used by process `pid` (nil: this process), or nil when /proc cannot tell.
    static func seconds(pid: Int32? = nil) -> Double? {
        let path = "/proc/\(pid.map(String.init) ?? "self")/stat"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
            let end = text.lastIndex(of: ")")
        else { return nil }
        // After the command name in parentheses come state, ppid, …; utime and stime are the
        // 14th and 15th fields of the line, the 12th and 13th after the name.
        let fields = text[text.index(after: end)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / ticksPerSecond
    }

    /// Seconds of CPU used by this process's children that have exited and been waited for
    /// (a load generator run to completion), or nil when /proc cannot tell.
    static func childrenSeconds() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let end = text.lastIndex(of: ")")
        else { return nil }
        // cutime and cstime: the 16th and 17th fields, the 14th and 15th after the name.
        let fields = text[text.index(after: end)...].split(separator: " ")
        guard fields.count > 14, let user = Double(fields[13]), let system = Double(fields[14]) else { return nil }
        return (user + system) / ticksPerSecond
    }

    /// The 1, 5 and 15 minute load averages, as /proc/loadavg gives them.
    static func loadAverage() -> String {
        let text = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? ""
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }
}
