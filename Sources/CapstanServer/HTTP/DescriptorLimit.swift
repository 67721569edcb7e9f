import Foundation

/// The process's limit on open descriptors (`ulimit -n`), which bounds how many agents a server
/// can hold: each keeps one connection.
public enum DescriptorLimit {
    /// The soft and hard limits, or nil when they cannot be read.
    static var current: (soft: rlim_t, hard: rlim_t)? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        return (limit.rlim_cur, limit.rlim_max)
    }

    /// Raises the soft limit to the hard one, as Go's runtime and etcd do at start: a soft limit
    /// of 1,024 would otherwise cap a server at 960 agents. Called once by the server command.
    ///
    /// - Returns: the soft limit in force afterwards, or nil when it cannot be read.
    @discardableResult
    public static func raise() -> rlim_t? {
        guard let limit = current else { return nil }
        guard limit.soft < limit.hard else { return limit.soft }
        var raised = rlimit(rlim_cur: limit.hard, rlim_max: limit.hard)
        return setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 ? limit.hard : limit.soft
    }
}
