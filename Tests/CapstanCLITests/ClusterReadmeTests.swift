import CapstanTesting
import Foundation
import Testing

/// Runs the cluster-mode block of docs/cluster.md (three etcd members, two replicas) as pasted,
/// on free ports and in a temporary directory instead of the page's fixed ones.
@Suite("Cluster mode block of the docs")
struct ClusterReadmeTests {
    static let page = ReadmeTourTests.readme.deletingLastPathComponent().appendingPathComponent("docs/cluster.md")

    /// The first `sh` block after the "# Cluster mode" heading.
    static func block() throws -> String {
        let text = try String(contentsOf: page, encoding: .utf8)
        guard let heading = text.range(of: "# Cluster mode"),
            let start = text.range(of: "```sh\n", range: heading.upperBound..<text.endIndex),
            let end = text.range(of: "```", range: start.upperBound..<text.endIndex)
        else {
            throw TimeoutError(what: "a cluster-mode block in docs/cluster.md", timeout: .zero)
        }
        return String(text[start.upperBound..<end.lowerBound])
    }

    @Test(.timeLimit(.minutes(2)))
    func theClusterBlockWorksAsPasted() async throws {
        var script = try Self.block()
        // The test already put the built binary on PATH.
        script = script.split(separator: "\n").filter { !$0.hasPrefix("export PATH=") }.joined(separator: "\n")
        let directory = try TemporaryDirectory(prefix: "capstan-cluster-readme")
        defer { directory.remove() }
        script = script.replacingOccurrences(of: "/tmp/capstan-", with: directory.path + "/capstan-")
        // Through placeholders, so that no free port is mistaken for a fixed one.
        var ports: [String: String] = [:]
        let fixed = ["2379", "2380", "2479", "2480", "2579", "2580", "8741", "8742"]
        for port in fixed {
            ports[port] = String(try freePort())
            script = script.replacingOccurrences(of: port, with: "@PORT\(port)@")
        }
        for port in fixed {
            script = script.replacingOccurrences(of: "@PORT\(port)@", with: ports[port]!)
        }
        let binDirectory = URL(fileURLWithPath: CapstanBinary.path).deletingLastPathComponent().path
        let process = try ChildProcess(
            path: "/bin/bash", arguments: ["-c", script],
            // No token but the one the block makes for itself.
            environment: [
                "PATH": "\(binDirectory):\(ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")", "CAPSTAN_TOKEN": "",
                "CAPSTAN_ROOT_TOKEN": "",
            ])
        process.closeInput()
        let status: Int32
        do {
            status = try await withTimeout(.seconds(90), "the cluster block of docs/cluster.md") { await process.exitStatus() }
        } catch {
            // Whatever the block left running is named by the temporary directory or its ports.
            _ = try? await CapstanBinary.shellKill(directory.path, ports: [ports["8741"]!, ports["8742"]!])
            throw error
        }
        let output = process.output
        #expect(status == 0, "stdout: \(output) stderr: \(process.errorOutput)")
        #expect(output.contains("created namespace prod"))
        #expect(output.contains("port: 8080\n"), "the second replica did not serve the first one's write: \(output)")
        let events = output.split(separator: "\n").filter { $0.contains("put  prod/app.yaml") }
        #expect(events.count == 2, "the watch through the first replica saw: \(events)")
        #expect(events.last?.contains("version 2") == true)
    }
}

extension CapstanBinary {
    /// Kills what a shell script left behind: processes whose command line names `directory`
    /// (etcd members) or listens on one of `ports` (servers).
    static func shellKill(_ directory: String, ports: [String]) async throws -> Int32 {
        let patterns = [directory] + ports.map { "127.0.0.1:\($0)" }
        let process = try ChildProcess(
            path: "/bin/bash", arguments: ["-c", patterns.map { "pkill -KILL -f '\($0)'" }.joined(separator: "; ")])
        process.closeInput()
        return await process.exitStatus()
    }
}
