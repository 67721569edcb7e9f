import Foundation

/// Drives a server with `wrk`, a C load generator in its own process, running a Lua script.
///
/// The Swift generator shares the benchmark process with its HTTP client's work, which on two
/// cores costs the server under test (and etcd's gateway more than Capstan); wrk's cost per
/// request is a fraction of it.
struct WrkGenerator: Sendable {
    /// Path of the wrk binary.
    let executable: String
    /// Where scripts and wrk's output are kept while it runs.
    let directory: String

    /// Runs `script` against `baseURL` with `clients` connections for `duration`.
    /// - Returns: the figures wrk printed, with `generatorCPUSeconds` set to wrk's CPU time.
    /// - Throws: `BenchError` when wrk cannot start, fails, or prints no result line.
    func run(baseURL: String, script: String, clients: Int, duration: Duration, name: String) async throws -> LoadGenerator.Result {
        let scriptPath = directory + "/\(name).lua"
        let outputPath = directory + "/\(name).out"
        try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        let threads = max(1, min(clients, ProcessInfo.processInfo.activeProcessorCount))
        // wrk takes whole seconds.
        let seconds = max(1, Int(duration.seconds.rounded(.up)))
        let command = TimedCommand(
            executable: executable,
            arguments: [
                "-t", String(threads), "-c", String(clients), "-d", "\(seconds)s", "--timeout", "60s",
                "-s", scriptPath, baseURL,
            ],
            logPath: outputPath)
        let cpuBefore = ProcessCPU.childrenSeconds()
        _ = try await command.run()
        let cpuAfter = ProcessCPU.childrenSeconds()
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: outputPath)
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix(WrkScript.resultMarker + " ") }) else {
            throw BenchError("wrk printed no result line; its output:\n\(output.suffix(2000))")
        }
        var result = try Self.parse(line)
        if let cpuBefore, let cpuAfter { result.generatorCPUSeconds = cpuAfter - cpuBefore }
        return result
    }

    /// Reads the line the scripts' `done` prints (see `WrkScript.common`).
    static func parse(_ line: Substring) throws -> LoadGenerator.Result {
        var fields: [Substring: Int] = [:]
        for pair in line.split(separator: " ").dropFirst() {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, let value = Int(parts[1]) { fields[parts[0]] = value }
        }
        func field(_ name: Substring) throws -> Int {
            guard let value = fields[name] else { throw BenchError("wrk's result line lacks \(name): \(line)") }
            return value
        }
        let requests = try field("requests")
        let statusErrors = try field("status")
        let socketErrors = try field("connect") + field("read") + field("write") + field("timeout")
        var result = LoadGenerator.Result()
        result.succeeded = max(0, requests - statusErrors)
        result.failed = statusErrors + socketErrors
        if result.failed > 0 {
            result.firstFailure = "wrk: \(statusErrors) answers not 2xx/3xx, \(socketErrors) socket errors or timeouts"
        }
        result.elapsed = .microseconds(try field("duration_us"))
        result.percentiles = LatencySummary(
            count: result.succeeded,
            p50: Double(try field("p50_us")) / 1000, p90: Double(try field("p90_us")) / 1000,
            p99: Double(try field("p99_us")) / 1000, max: Double(try field("max_us")) / 1000)
        return result
    }
}
