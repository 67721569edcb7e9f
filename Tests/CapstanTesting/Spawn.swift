import Foundation
import Synchronization

/// Starts a program with `posix_spawn` directly, its standard streams on pipes and every other
/// descriptor closed in the child.
///
/// Foundation's `Process.run()` on Linux emulates "close every other descriptor" by adding one
/// close action per descriptor number up to the highest open one; with hundreds of sockets open in
/// the test process (the descriptor and malformed-request tests hold 600) it crashed the whole
/// suite inside its own copying, about one full run in two. glibc's `closefrom` action does the
/// same in one step.
enum Spawn {
    struct Started {
        let pid: pid_t
        /// The parent's ends: the child's standard input (to write), output and error (to read).
        let input: Int32
        let output: Int32
        let errors: Int32
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// glibc 2.34 and later; not in the Swift overlay's headers, so looked up by name.
    private static let addCloseFrom: AddCloseFrom? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
            return nil
        }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()

    /// A pipe whose both ends are closed on exec (the child gets its end through dup2).
    private static func pipe() throws -> (read: Int32, write: Int32) {
        var ends: [Int32] = [0, 0]
        guard Glibc.pipe(&ends) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        // Closed on exec: another child, started at the same moment, must not hold them open
        // (its own `closefrom` covers the moment between these two calls).
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        return (ends[0], ends[1])
    }

    /// Starts `path` with `arguments` and exactly `environment`, in a process group of its own
    /// (as Foundation does: a terminal's Ctrl-C goes to the test run, not to its children).
    static func start(path: String, arguments: [String], environment: [String: String]) throws -> Started {
        // A child that exits before its input is closed must not kill the suite with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        let input = try pipe(), output = try pipe(), errors = try pipe()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input.read, 0)
        posix_spawn_file_actions_adddup2(&actions, output.write, 1)
        posix_spawn_file_actions_adddup2(&actions, errors.write, 2)
        if let addCloseFrom { _ = addCloseFrom(&actions, 3) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The child gets SIGPIPE's default back: an ignored signal stays ignored across exec, and
        // shell pipelines in tests (`head | tr`) rely on a writer dying when its reader leaves.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid = pid_t()
        let status = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        for end in [input.read, output.write, errors.write] { close(end) }
        guard status == 0 else {
            for end in [input.write, output.read, errors.read] { close(end) }
            throw POSIXError(POSIXErrorCode(rawValue: status) ?? .EIO)
        }
        return Started(pid: pid, input: input.write, output: output.read, errors: errors.read)
    }

    /// Blocks until `pid` exits; answers its exit code, or the signal that ended it (as
    /// Foundation's `terminationStatus` does).
    static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            if errno != EINTR { return -1 }
        }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : signal
    }
}
