import CapstanClient
import CapstanTesting
import Foundation
import Synchronization
import Testing

/// `kill -9` of the real server binary in the middle of a stream of writes loses no write it
/// acknowledged.
@Suite("Crash durability", .serialized)
struct CrashDurabilityTests {
    struct Ack: Sendable {
        var key: String
        var content: String
        var revision: Int64
    }

    final class Acks: Sendable {
        private let list = Mutex<[Ack]>([])
        func withLock<T>(_ body: (inout [Ack]) -> T) -> T { list.withLock { body(&$0) } }
    }

    @Test func killMinus9LosesNoAcknowledgedWrite() async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-crash")
        defer { directory.remove() }
        let server = try await ServerProcess.start(dataDirectory: directory.path)
        let acknowledged = try await server.process.stopping {
            try await Self.writeUntilKilled(server)
        }
        #expect(acknowledged.count >= Self.killAfter)
        try await ServerProcess.with(dataDirectory: directory.path) { restarted in
            try await Self.verify(acknowledged, server: restarted)
        }
    }

    static let killAfter = 400

    /// Answers do not wait for their audit entries' commits, so a stop must: SIGTERM while 16
    /// clients write, and after a restart every answered write has its entry in a whole chain.
    @Test func sigtermWhileWritingKeepsEveryAnsweredWritesAuditEntry() async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-term-audit")
        defer { directory.remove() }
        let server = try await ServerProcess.start(dataDirectory: directory.path)
        let acknowledged = try await server.process.stopping {
            try await Self.writeUntilKilled(server, signal: SIGTERM)
        }
        #expect(acknowledged.count >= Self.killAfter)
        try await ServerProcess.with(dataDirectory: directory.path) { restarted in
            let reader = CapstanClient(server: restarted.url, token: TestAuth.rootToken)
            let entries = try await reader.audit(resource: "/v1/config/dur/", limit: 10_000).items
            let audited = Set(entries.filter { $0.status == 200 }.map(\.resource))
            let missing = acknowledged.map { "/v1/config/" + $0.key }.filter { !audited.contains($0) }
            #expect(missing.isEmpty, "answered writes without an audit entry after SIGTERM: \(missing.prefix(10))")
            let verification = try await reader.verifyAudit()
            #expect(verification.valid, "\(verification.problem ?? "")")
        }
    }

    /// Writes from 16 clients and kills the server with SIGKILL while writes are in flight;
    /// answers every write the server acknowledged.
    static func writeUntilKilled(_ server: ServerProcess, signal: Int32 = SIGKILL) async throws -> [Ack] {
        let client = CapstanClient(server: server.url, author: "crash-test", token: TestAuth.rootToken)
        _ = try await client.createNamespace("dur")
        let acks = Acks()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<16 {
                group.addTask {
                    var index = 0
                    while true {
                        let key = "dur/w\(writer)/\(index).txt"
                        let content = "writer \(writer) write \(index)"
                        do {
                            let info = try await client.put(key, content: Data(content.utf8))
                            acks.withLock { $0.append(Ack(key: key, content: content, revision: info.revision)) }
                        } catch {
                            return  // the server is gone
                        }
                        index += 1
                    }
                }
            }
            // Kill while writes are in flight: as soon as enough have been acknowledged.
            try await eventually(timeout: .seconds(60), "\(killAfter) acknowledged writes") {
                acks.withLock { $0.count } >= killAfter
            }
            server.process.signal(signal)
            try await group.waitForAll()
        }
        return acks.withLock { $0 }
    }

    static func verify(_ acknowledged: [Ack], server restarted: ServerProcess) async throws {
        let reader = CapstanClient(server: restarted.url, token: TestAuth.rootToken)
        let listed = try await reader.list("dur")
        let stored = Dictionary(uniqueKeysWithValues: listed.items.map { ($0.key, $0.revision) })
        var missing: [String] = []
        for ack in acknowledged where stored[ack.key] != ack.revision {
            missing.append(ack.key)
        }
        #expect(missing.isEmpty, "acknowledged writes lost after kill -9: \(missing.prefix(10))")
        for ack in acknowledged.shuffled().prefix(50) {
            let content = try await reader.get(ack.key)
            #expect(String(decoding: content.content, as: UTF8.self) == ack.content)
        }
    }

    @Test func sigtermShutsDownCleanly() async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-term")
        defer { directory.remove() }
        try await ServerProcess.with(dataDirectory: directory.path) { server in
            try await Self.terminate(server)
        }
    }

    static func terminate(_ server: ServerProcess) async throws {
        let client = CapstanClient(server: server.url, token: TestAuth.rootToken)
        _ = try await client.createNamespace("term")
        let watcher = Task { for try await _ in client.watch("term/") {} }
        defer { watcher.cancel() }
        server.process.signal(SIGTERM)
        let status = try await withTimeout(.seconds(20), "server to exit on SIGTERM; its log: \(server.process.errorOutput)") {
            await server.process.exitStatus()
        }
        #expect(status == 0)
    }
}
