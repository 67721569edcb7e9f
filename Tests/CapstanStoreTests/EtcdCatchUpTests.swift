import CapstanStore
import CapstanTesting
import Foundation
import Testing

@Suite("etcd: watches catching up from before the feed")
struct EtcdCatchUpTests {
    /// A replica that starts after the writes reads a watch's past from etcd. When the newest
    /// revision is outside the watched range, the past still arrives at once: nothing waits for
    /// the range's next change.
    @Test(.timeLimit(.minutes(1)))
    func pastEventsArriveWhenTheNewestRevisionIsElsewhere() async throws {
        try await EtcdProcess.with { etcd in
            let writer = try await EtcdStore(endpoints: [etcd.clientURL], prefix: "/catch-up")
            let first = try await writer.put("r/a", Data("1".utf8))
            try await writer.put("r/b", Data("2".utf8))
            try await writer.put("elsewhere", Data("x".utf8))
            await writer.shutdown()
            let reader = try await EtcdStore(endpoints: [etcd.clientURL], prefix: "/catch-up")
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await reader.run() }
                defer { group.cancelAll() }
                let seen = try await withTimeout(.seconds(10), "the past events of r/") {
                    var iterator = reader.watch(.prefix("r/"), fromRevision: first.modRevision).makeAsyncIterator()
                    var seen: [WatchEvent] = []
                    while seen.count < 2, let batch = try await iterator.next() { seen += batch }
                    return seen
                }
                #expect(seen.map(\.kv.key) == ["r/a", "r/b"])
            }
            await reader.shutdown()
        }
    }
}
