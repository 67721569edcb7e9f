import Foundation

/// The real `promtool check metrics`, from PATH (the Debian package `prometheus`, which the
/// test script installs).
public enum Promtool {
    public struct Missing: Error, CustomStringConvertible {
        public var description: String { "promtool is not on PATH: run scripts/test.sh, which installs it (apt-get install -y prometheus)" }
    }

    /// Checks `text` as Prometheus text exposition; answers promtool's exit status and output.
    /// (The wait blocks, so it happens on a thread of its own.)
    public static func check(_ text: String) async throws -> (status: Int32, output: String) {
        try await onThread { try run(text) }
    }

    private static func run(_ text: String) throws -> (status: Int32, output: String) {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
        guard let path = directories.map({ "\($0)/promtool" }).first(where: FileManager.default.isExecutableFile) else { throw Missing() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["check", "metrics"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        try input.fileHandleForWriting.write(contentsOf: Data(text.utf8))
        try input.fileHandleForWriting.close()
        // Plain reads that retry on EINTR: FileHandle's readers trap on it, and the suite's many
        // child processes make SIGCHLD interrupt reads often.
        var result = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        let descriptor = output.fileHandleForReading.fileDescriptor
        while true {
            let count = read(descriptor, &buffer, buffer.count)
            if count > 0 {
                result.append(contentsOf: buffer[0..<count])
            } else if count < 0, errno == EINTR {
                continue
            } else {
                break
            }
        }
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: result, as: UTF8.self))
    }
}
