import Foundation

/// The real `promtool check metrics`, from PATH (the Debian package `prometheus`, which the
/// test script installs).
public enum Promtool {
    public struct Missing: Error, CustomStringConvertible {
        public var description: String { "promtool is not on PATH: run scripts/test.sh, which installs it (apt-get install -y prometheus)" }
    }

    /// Checks `text` as Prometheus text exposition; answers promtool's exit status and output
    /// (standard output, then standard error).
    public static func check(_ text: String) async throws -> (status: Int32, output: String) {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
        guard let path = directories.map({ "\($0)/promtool" }).first(where: FileManager.default.isExecutableFile) else { throw Missing() }
        let process = try ChildProcess(path: path, arguments: ["check", "metrics"])
        process.write(text)
        process.closeInput()
        let status = await process.exitStatus()
        return (status, process.output + process.errorOutput)
    }
}
