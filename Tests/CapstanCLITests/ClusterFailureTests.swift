import CapstanClient
import CapstanCore
import CapstanTesting
import Foundation
import Synchronization
import Testing

/// A three-member etcd cluster and two Capstan replicas, all real processes on loopback, under a
/// steady stream of writes: the etcd leader, then a follower, then a replica are killed in turn.
@Suite("Cluster failures")
struct ClusterFailureTests {
    /// Writes acknowledged to writers, and a way to await their number.
    final class Ledger: Sendable {
        struct Write: Sendable {
            var content: String
            var revision: Int64
        }

        private struct State {
            var acked: [String: Write] = [:]
            var waiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
        }

        private let state = Mutex(State())

        var acked: [String: Write] { state.withLock { $0.acked } }
        var count: Int { state.withLock { $0.acked.count } }

        func ack(_ key: String, _ write: Write) {
            let ready = state.withLock { state in
                state.acked[key] = write
                let count = state.acked.count
                let ready = state.waiters.filter { $0.count <= count }.map(\.continuation)
                state.waiters.removeAll { $0.count <= count }
                return ready
            }
            for continuation in ready { continuation.resume() }
        }

        /// Returns once `more` writes beyond the current count are acknowledged.
        func waitForMore(_ more: Int) async {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state in
                    guard more > 0 else { return true }
                    state.waiters.append((state.acked.count + more, continuation))
                    return false
                }
                if now { continuation.resume() }
            }
        }
    }

    /// Events a client saw, in the order it saw them, across the replicas it used.
    final class Seen: Sendable {
        private let events = Mutex<[String]>([])
        func append(_ event: ConfigEvent) { events.withLock { $0.append("\(event.revision) \(event.type.rawValue) \(event.key)") } }
        var all: [String] { events.withLock { $0 } }
        var lastRevision: Int64? { events.withLock { $0.last.flatMap { Int64($0.prefix { $0 != " " }) } } }
    }

    /// Writes new keys one after another through a client that knows both replicas (it moves to
    /// the other one when its replica cannot be reached); a write that failed is tried again.
    /// Only answered writes go into the ledger.
    static func writer(_ number: Int, client: CapstanClient, ledger: Ledger) async {
        var sequence = 0
        while !Task.isCancelled {
            let key = "load/w\(number)/k\(sequence).txt"
            let content = "writer \(number) write \(sequence)\n"
            do {
                let info = try await client.put(key, content: Data(content.utf8))
                ledger.ack(key, .init(content: content, revision: info.revision))
                sequence += 1
            } catch {
                if Task.isCancelled { return }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    /// Follows `load/` through `client` from `from`, recording every event.
    static func watcher(_ client: CapstanClient, from: Int64, into seen: Seen) -> Task<Void, any Error> {
        Task {
            for try await event in client.watch("load/", from: from, includeContent: false) {
                seen.append(event)
            }
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func killingTheLeaderAFollowerAndAReplicaLosesNoAcknowledgedWrite() async throws {
        try await EtcdCluster.with { cluster in
            // The replicas start on different members (each goes to the first it lists).
            let rotated = [1, 2, 0].map { cluster.members[$0].clientURL.dropFirst("http://".count) }
            let secondStore = "etcd://" + rotated.joined(separator: ",")
            let first = try await ServerProcess.start(dataDirectory: nil, extraArguments: ["--store", cluster.storeURL])
            let second = try await ServerProcess.start(dataDirectory: nil, extraArguments: ["--store", secondStore])
            defer {
                first.process.signal(SIGKILL)
                second.process.signal(SIGKILL)
            }
            try await ServerProcess.explaining(["first": first, "second": second]) {
                let clients = [first, second].map { CapstanClient(server: $0.url, author: "load", token: TestAuth.rootToken) }
                // Clients that know both replicas, each preferring one.
                let both = [
                    CapstanClient(server: "\(first.url),\(second.url)", author: "load", token: TestAuth.rootToken),
                    CapstanClient(server: "\(second.url),\(first.url)", author: "load", token: TestAuth.rootToken),
                ]
                _ = try await clients[0].createNamespace("load")
                let start = try await clients[0].list("load").revision

                let seenFirst = Seen()
                let seenSecond = Seen()
                // The first watcher goes through the first replica and, when it dies, resumes on the
                // second by itself.
                let watchFirst = Self.watcher(both[0], from: start + 1, into: seenFirst)
                let watchSecond = Self.watcher(clients[1], from: start + 1, into: seenSecond)
                let ledger = Ledger()
                let writers = (0..<4).map { number in
                    Task { await Self.writer(number, client: both[number % 2], ledger: ledger) }
                }
                defer {
                    for task in writers { task.cancel() }
                    watchFirst.cancel()
                    watchSecond.cancel()
                }
                await ledger.waitForMore(50)

                // The etcd leader dies; writes carry on through the other two members.
                let leader = try await cluster.leader()
                try await cluster.kill(leader)
                await ledger.waitForMore(50)
                try await cluster.start(leader)

                // Then a follower, another than the member just killed: between the two, the
                // member one replica's watch feed was reading from is always hit.
                var follower = ""
                try await eventually("the cluster to agree on a leader") {
                    guard let current = try? await cluster.leader() else { return false }
                    follower = cluster.members.map(\.name).first { $0 != current && $0 != leader } ?? ""
                    return true
                }
                try await cluster.kill(follower)
                await ledger.waitForMore(50)
                try await cluster.start(follower)
                await ledger.waitForMore(20)

                // Then the first replica: its writers and its watcher move to the second.
                first.process.signal(SIGKILL)
                try await eventually("the first replica to die") { first.process.isDead }
                await ledger.waitForMore(50)
                for task in writers { task.cancel() }
                for task in writers { await task.value }

                // Every acknowledged write is there, at the revision it was acknowledged with.
                let acked = ledger.acked
                #expect(acked.count >= 220)
                let listing = try await clients[1].list("load")
                let present = Dictionary(uniqueKeysWithValues: listing.items.map { ($0.key, $0.revision) })
                for (key, write) in acked {
                    #expect(present[key] == write.revision, "acknowledged write of \(key) at \(write.revision) is missing or changed")
                }
                for key in acked.keys.sorted().prefix(20) {
                    let read = try await clients[1].get(key)
                    #expect(String(decoding: read.content, as: UTF8.self) == acked[key]?.content)
                }

                // Both watchers saw exactly what the store recorded: no gap, no duplicate.
                let replay = Seen()
                // The last write under load/ (the store's own revision may be an audit entry's).
                let end = listing.items.map(\.revision).max() ?? start
                for try await event in clients[1].watch("load/", from: start + 1, includeContent: false) {
                    replay.append(event)
                    if event.revision >= end { break }
                }
                try await eventually("the watchers to catch up to revision \(end)") {
                    (seenFirst.lastRevision ?? 0) >= end && (seenSecond.lastRevision ?? 0) >= end
                }
                let expected = replay.all
                #expect(expected.count >= acked.count)
                for (name, seen) in [("through the first replica, then the second", seenFirst), ("through the second replica", seenSecond)] {
                    let prefix = Array(seen.all.prefix(expected.count))
                    #expect(prefix == expected, "the watcher \(name) saw \(Self.difference(prefix, expected))")
                }
                await second.process.stop()
            }
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func aFrozenMemberLosesTheReplicaToTheOthers() async throws {
        try await EtcdCluster.with { cluster in
            // The replica goes to the first member it lists, m1, for calls and its watch feed.
            let server = try await ServerProcess.start(
                dataDirectory: nil, extraArguments: ["--store", cluster.storeURL, "--store-timeout", "1s"])
            defer { server.process.signal(SIGKILL) }
            try await ServerProcess.explaining(["replica": server]) {
                let client = CapstanClient(server: server.url, author: "load", token: TestAuth.rootToken)
                _ = try await client.createNamespace("load")
                let start = try await client.list("load").revision
                let seen = Seen()
                let watch = Self.watcher(client, from: start + 1, into: seen)
                let ledger = Ledger()
                let writer = Task { await Self.writer(0, client: client, ledger: ledger) }
                defer {
                    writer.cancel()
                    watch.cancel()
                }
                await ledger.waitForMore(20)

                // m1 freezes: its connections stay open and it answers nothing. Calls time out and
                // move on; the feed's watchdog finds m1 silent and moves the feed.
                cluster.freeze("m1")
                defer { cluster.thaw("m1") }
                await ledger.waitForMore(20)
                writer.cancel()
                await writer.value

                let acked = ledger.acked.values.map(\.revision)
                let last = try #require(acked.max())
                try await eventually(timeout: .seconds(30), "the watch to deliver revision \(last)") {
                    (seen.lastRevision ?? 0) >= last
                }
                let revisions = seen.all.compactMap { Int64($0.prefix { $0 != " " }) }
                #expect(revisions == revisions.sorted(), "the watch delivered out of order")
                #expect(Set(revisions).count == revisions.count, "the watch delivered a change twice")
                let missing = acked.filter { !revisions.contains($0) }
                #expect(missing.isEmpty, "the watch missed acknowledged writes at \(missing.sorted())")
                cluster.thaw("m1")
                await server.process.stop()
            }
        }
    }

    /// The first place two event lists part, for a readable failure.
    static func difference(_ seen: [String], _ expected: [String]) -> String {
        for (index, pair) in zip(seen, expected).enumerated() where pair.0 != pair.1 {
            return "\(pair.0) where the store has \(pair.1) (event \(index + 1))"
        }
        return "\(seen.count) events where the store has \(expected.count)"
    }
}
