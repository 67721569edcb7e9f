import Foundation
import Synchronization

/// Starts child processes one at a time. Foundation's `Process.run()` on Linux was seen to crash
/// (a bad pointer inside its own copying) when several threads launched processes at once, so
/// every launch in this codebase goes through this lock. A launch takes well under a millisecond.
public enum ProcessLaunch {
    private static let lock = Mutex(())

    public static func run(_ process: Process) throws {
        try lock.withLock { _ in try process.run() }
    }
}
