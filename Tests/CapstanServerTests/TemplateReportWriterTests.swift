import CapstanCore
import CapstanStore
import CapstanTesting
import Foundation
import Logging
import ServiceLifecycleTestKit
import Testing

@testable import CapstanServer

/// Agents' template reports are written by one writer loop, in batches, not by a task per burst.
@Suite("Template report writer", .timeLimit(.minutes(1)))
struct TemplateReportWriterTests {
    private static func report(_ state: TemplateState, revision: Int64 = 1) -> TemplateReport {
        TemplateReport(template: "app", revision: revision, state: state, error: nil, time: Date())
    }

    /// Reads the status keys of `app` once `count` of them have been written.
    private static func awaitStatuses(_ store: any KeyValueStore, count: Int, after revision: Int64) async throws -> [String] {
        var written: Set<String> = []
        for try await batch in store.watch(.prefix(StoreLayout.templateStatusPrefix("app")), fromRevision: revision + 1) {
            for event in batch where event.kind == .put { written.insert(event.kv.key) }
            if written.count >= count { break }
        }
        return written.sorted()
    }

    @Test func reportsFromABurstAreWrittenTogether() async throws {
        try await StoreEngine.sqlite.withStore { store in
            let templates = TemplateService(store: store, logger: Logger(label: "test"))
            _ = try await templates.put("app", TemplateSpec(selector: "", source: "app/a.mustache", dest: "/tmp/a", data: []))
            let start = try await store.status().revision
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await templates.runReportWriter() }
                for node in ["n1", "n2", "n3"] { templates.record(Self.report(.applied), from: node) }
                let keys = try await Self.awaitStatuses(store, count: 3, after: start)
                #expect(keys == ["n1", "n2", "n3"].map { StoreLayout.templateStatus("app", node: $0) })
                // One transaction for the burst: the three keys share a revision.
                let revisions = try await keys.asyncMap { try await store.get($0)?.modRevision }
                #expect(Set(revisions).count == 1, "\(revisions)")
                group.cancelAll()
            }
        }
    }

    /// Told of a graceful shutdown before its batch delay is over, the writer writes what waits
    /// on the way out, on both engines (etcd refuses calls from a cancelled task: the writer is
    /// ended, not cancelled).
    @Test(arguments: StoreEngine.allCases)
    func reportsThatCameLastAreWrittenAtAGracefulShutdown(engine: StoreEngine) async throws {
        try await engine.withStore { store in
            let templates = TemplateService(store: store, logger: Logger(label: "test"))
            _ = try await templates.put("app", TemplateSpec(selector: "", source: "app/a.mustache", dest: "/tmp/a", data: []))
            await testGracefulShutdown { shutdown in
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { await templates.runReportWriter() }
                    templates.record(Self.report(.failed, revision: 2), from: "n1")
                    shutdown.triggerGracefulShutdown()
                    await group.waitForAll()
                }
            }
            #expect(try await store.get(StoreLayout.templateStatus("app", node: "n1")) != nil)
        }
    }

    @Test func aCancelledWriterStillWritesWhatWaitsOnSQLite() async throws {
        try await StoreEngine.sqlite.withStore { store in
            let templates = TemplateService(store: store, logger: Logger(label: "test"))
            _ = try await templates.put("app", TemplateSpec(selector: "", source: "app/a.mustache", dest: "/tmp/a", data: []))
            templates.record(Self.report(.failed, revision: 2), from: "n1")
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await templates.runReportWriter() }
                group.cancelAll()
            }
            #expect(try await store.get(StoreLayout.templateStatus("app", node: "n1")) != nil)
        }
    }
}

extension Sequence where Element: Sendable {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
