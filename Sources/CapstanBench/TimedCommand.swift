import Foundation

/// A command run to completion as a child process, timed from spawn to exit.
struct TimedCommand: Sendable {
    var executable: String
    var arguments: [String]
    /// Added to this process's environment.
    var environment: [String: String] = [:]
    /// Standard output and error go here (appended).
    var logPath: String

    /// The command as a reader would type it, for reports.
    var display: String {
        ([URL(fileURLWithPath: executable).lastPathComponent] + arguments).joined(separator: " ")
    }

    /// Runs the command; answers its wall time.
    /// - Throws: `BenchError` when it cannot start or exits with a status other than 0 (with the
    ///   end of its output).
    func run() async throws -> Duration {
        if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        defer { try? log.close() }
        try log.seekToEnd()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        let start = ContinuousClock.now
        typealias Exit = (at: ContinuousClock.Instant, status: Int32)
        let (end, status) = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Exit, any Error>) in
            process.terminationHandler = { process in continuation.resume(returning: (.now, process.terminationStatus)) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: BenchError("cannot start \(executable): \(error)"))
            }
        }
        guard status == 0 else {
            let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            let tail = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(30).joined(separator: "\n")
            throw BenchError("`\(display)` exited with status \(status); its output ends with:\n\(tail)")
        }
        return start.duration(to: end)
    }

    /// The full path of `name` in `PATH`, or nil.
    static func which(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
