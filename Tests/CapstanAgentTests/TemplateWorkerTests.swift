import CapstanCore
import CapstanTesting
import Foundation
import Logging
import Testing

@testable import CapstanAgent

#if canImport(Glibc)
    import Glibc
#endif

/// The agent's template worker: sets are applied one at a time, in the order they came, and a
/// burst that arrives during an apply costs one more pass (the newest), not one per set.
@Suite("Template worker", .timeLimit(.minutes(1)))
struct TemplateWorkerTests {
    @Test func setsArrivingDuringAnApplyCollapseToTheNewest() async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-worker")
        defer { directory.remove() }
        // The reload says it started through one FIFO and waits for the test through another,
        // so the test holds an apply in the middle without guessing at times.
        let started = directory.file("started")
        let gate = directory.file("gate")
        #expect(mkfifo(started, 0o600) == 0)
        #expect(mkfifo(gate, 0o600) == 0)
        let worker = TemplateWorker(
            applier: TemplateApplier(allowedPaths: [directory.path], logger: Logger(label: "test")),
            dataDirectory: directory.path, name: "n1", logger: Logger(label: "test"))
        let (reports, reported) = AsyncStream.makeStream(of: TemplateReport.self)
        await worker.connected(facts: HostFacts.collect()) { reported.yield($0) }
        func set(_ revision: Int64) -> AgentMessage.Templates {
            let spec = TemplateSpec(
                selector: "", source: "t.mustache", dest: directory.file("out.conf"),
                reload: "echo started > \(started); cat \(gate) > /dev/null", shell: true)
            let assignment = TemplateAssignment(
                name: "t", revision: revision, spec: spec, source: "value {{v}}\n", data: .object(["v": .int(revision)]), problem: nil)
            return AgentMessage.Templates(assignments: [assignment], labels: [:], digest: "d\(revision)")
        }

        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await worker.run() }
            worker.submit(set(1))
            try await onThread { try Self.readLine(from: started) }
            // Two more sets while the first one's reload runs: only the newest is applied next.
            worker.submit(set(2))
            worker.submit(set(3))
            try await onThread { try Self.write("go\n", to: gate) }
            try await onThread { try Self.readLine(from: started) }
            try await onThread { try Self.write("go\n", to: gate) }
            var iterator = reports.makeAsyncIterator()
            let first = await iterator.next()
            let second = await iterator.next()
            #expect(first?.revision == 1)
            #expect(first?.state == .applied)
            #expect(second?.revision == 3, "the set of revision 2, replaced while it waited, was applied")
            #expect(second?.state == .applied)
            #expect(FileManager.default.contents(atPath: directory.file("out.conf")) == Data("value 3\n".utf8))
            group.cancelAll()
        }
    }

    private static func readLine(from fifo: String) throws {
        guard let handle = FileHandle(forReadingAtPath: fifo) else { throw CocoaError(.fileReadNoSuchFile) }
        defer { try? handle.close() }
        _ = try handle.readToEnd()
    }

    private static func write(_ text: String, to fifo: String) throws {
        guard let handle = FileHandle(forWritingAtPath: fifo) else { throw CocoaError(.fileWriteUnknown) }
        defer { try? handle.close() }
        try handle.write(contentsOf: Data(text.utf8))
    }
}
