import CapstanTesting
import Foundation
import Testing

/// The benchmark commands run end to end on a small scale: a benchmark that no longer runs
/// against the current server (a route that now needs a token, say) fails here, not in the next
/// measurement session.
@Suite("Benchmark smoke runs", .serialized)
struct BenchSmokeTests {
    /// `CapstanBench`, built beside the `capstan` binary the suite runs.
    static var benchPath: String {
        URL(fileURLWithPath: CapstanBinary.path).deletingLastPathComponent().appendingPathComponent("CapstanBench").path
    }

    static func run(_ arguments: [String], timeout: Duration) async throws -> CapstanBinary.Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bench-smoke-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let process = try ChildProcess(path: benchPath, arguments: arguments + ["--work-dir", directory, "--etcd", EtcdProcess.path])
        process.closeInput()
        return try await process.stopping {
            let status = try await withTimeout(timeout, "CapstanBench \(arguments.joined(separator: " "))") { await process.exitStatus() }
            return CapstanBinary.Result(status: status, stdout: process.output, stderr: process.errorOutput)
        }
    }

    @Test func aJobOnTenSimulatedAgentsIsMeasured() async throws {
        let result = try await Self.run(["jobs", "--agents", "10", "--runs", "1", "--real-agents", "0"], timeout: .seconds(180))
        #expect(result.status == 0, "\(result.stderr.suffix(2000))")
        #expect(result.stdout.contains("| 10 | "), "\(result.stdout)")
    }

    @Test func theStoreComparisonRunsOnce() async throws {
        let result = try await Self.run(
            ["store", "--clients", "2", "--runs", "1", "--duration", "300ms", "--warmup", "100ms", "--keys", "20", "--watch-events", "5",
             "--generators", "swift"],
            timeout: .seconds(180))
        #expect(result.status == 0, "\(result.stderr.suffix(2000))")
        #expect(result.stdout.contains("Durable put"), "\(result.stdout)")
    }
}
