import Dispatch
import Foundation
import Synchronization

/// On SIGINT or SIGTERM, kills the child servers and removes the benchmark directory before
/// exiting, so an interrupted run leaves nothing behind.
final class InterruptCleanup {
    /// What to clean up; shared with the signal handlers.
    private final class Registry: Sendable {
        struct Contents {
            var directory: String?
            var processIdentifiers: [Int32] = []
        }

        let contents = Mutex(Contents())
    }

    private let registry = Registry()
    private let sources: [any DispatchSourceSignal]

    init() {
        let signals = [SIGINT, SIGTERM]
        sources = signals.map { DispatchSource.makeSignalSource(signal: $0, queue: .global()) }
        for (signalNumber, source) in zip(signals, sources) {
            // Dispatch sees the signal only when the default action (exit) is off.
            signal(signalNumber, SIG_IGN)
            source.setEventHandler { [registry] in
                let contents = registry.contents.withLock { $0 }
                for identifier in contents.processIdentifiers {
                    kill(identifier, SIGKILL)
                }
                if let directory = contents.directory {
                    try? FileManager.default.removeItem(atPath: directory)
                }
                let removed = contents.directory.map { ", \($0) removed" } ?? ""
                FileHandle.standardError.write(Data("CapstanBench: interrupted; servers killed\(removed)\n".utf8))
                exit(130)
            }
            source.resume()
        }
    }

    /// Removes `directory` on interruption.
    func watch(directory: String) {
        registry.contents.withLock { $0.directory = directory }
    }

    /// Kills the process on interruption.
    func watch(processIdentifier: Int32) {
        registry.contents.withLock { $0.processIdentifiers.append(processIdentifier) }
    }

    /// Restores the default handling of the signals.
    func cancel() {
        for source in sources {
            source.cancel()
        }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
