import EtcdAPI
import Foundation
import Synchronization

extension EtcdStore: WatchHistory {
    /// Recent events the feed has seen, so that watchers catching up a little (a reconnect)
    /// read them from memory instead of opening a watch of their own on etcd.
    struct Replay {
        var events: [WatchEvent] = []
        /// Every event of the prefix at or above this revision (up to the hub's) is in `events`.
        var completeFrom: Int64
        let capacity: Int

        /// Keeps at least the last `capacity` events (whole revisions). The oldest quarter is
        /// dropped at once, so that trimming costs a copy per `capacity / 4` events, not per event.
        mutating func append(_ batch: [WatchEvent]) {
            events.append(contentsOf: batch)
            guard events.count > capacity + capacity / 4 else { return }
            // Drop whole revisions from the front.
            var cut = events.count - capacity
            let lastDropped = events[cut - 1].revision
            while cut < events.count, events[cut].revision == lastDropped { cut += 1 }
            events.removeFirst(cut)
            completeFrom = lastDropped + 1
        }
    }

    /// Follows every change under the prefix with one etcd watch and publishes it to the hub;
    /// reconnects (to another member if need be) from the last revision it saw.
    ///
    /// A watchdog asks the feed's member for a read every request timeout: a member that does
    /// not answer in time, or answers that it cannot serve (frozen, cut off from its cluster,
    /// without closing the connection), loses the feed to another member.
    func runFeed() async throws {
        while !Task.isCancelled {
            let next = hub.revision + 1
            do {
                let watch = try await client.watch(watchRequest(.prefix(""), from: next)) { response in
                    try await self.follow(response)
                }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await watch.wait() }
                    group.addTask {
                        let failure = await self.watchMember(watch.endpoint)
                        try Task.checkCancellation()
                        self.client.avoid(watch.endpoint)
                        throw StoreError(
                            .io, "etcd at \(watch.endpoint), which the watch feed reads from, stopped answering: \(failure)")
                    }
                    defer { group.cancelAll() }
                    try await group.next()
                }
            } catch is CancellationError {
                return
            } catch is FeedRestart {
                continue
            } catch {
                if Task.isCancelled { return }
                logger.warning("etcd watch feed interrupted; resuming", metadata: ["error": "\(error)", "etcd.revision": "\(next)"])
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// The feed's watch was cancelled by etcd (after a compaction) and must be opened again.
    private struct FeedRestart: Error {}

    /// Publishes one answer of the feed's etcd watch.
    private func follow(_ response: Etcdserverpb_WatchResponse) async throws {
        if response.canceled {
            if response.compactRevision > 0 {
                try await restartAfterCompaction(response.compactRevision)
            }
            throw FeedRestart()
        }
        publish(response.events.map(event))
    }

    /// Returns, with the failure, when `endpoint` fails a read (one key, linearizable).
    private func watchMember(_ endpoint: String) async -> any Error {
        while true {
            do {
                try await Task.sleep(for: client.requestTimeout)
                let request = keys.wire(RangeRequest(.key(""), countOnly: true))
                _ = try await client.call("Range", on: endpoint) { try await $0.kv.range(request, options: $1) }
            } catch {
                return error
            }
        }
    }

    private func watchRequest(_ range: KeyRange, from: Int64) -> Etcdserverpb_WatchCreateRequest {
        var request = Etcdserverpb_WatchCreateRequest()
        (request.key, request.rangeEnd) = keys.bounds(range)
        request.startRevision = from
        return request
    }

    /// Publishes a batch of the feed, one revision at a time, in order.
    private func publish(_ events: [WatchEvent]) {
        guard !events.isEmpty else { return }
        replay.withLock { $0.append(events) }
        var start = events.startIndex
        while start < events.endIndex {
            let revision = events[start].revision
            let end = events[start...].firstIndex { $0.revision != revision } ?? events.endIndex
            hub.publish(Array(events[start..<end]), revision: revision)
            start = end
        }
    }

    /// The feed fell behind a compaction: what it missed is gone, so every watcher must resync.
    private func restartAfterCompaction(_ compactRevision: Int64) async throws {
        compacted.withLock { $0 = max($0, compactRevision) }
        let current = try await Self.currentRevision(client: client, keys: keys)
        replay.withLock { $0 = Replay(completeFrom: current + 1, capacity: $0.capacity) }
        hub.publish([], revision: current)
        hub.dropAll()
        logger.error("etcd compacted past the watch feed; watchers resync", metadata: ["etcd.compact_revision": "\(compactRevision)"])
    }

    func event(_ wire: Etcdserverpb_Event) -> WatchEvent {
        var kv = keys.keyValue(wire.kv)
        let isDelete = wire.type == .delete
        if isDelete { kv = KeyValue(key: kv.key, value: Data(), createRevision: 0, modRevision: kv.modRevision, version: 0) }
        return WatchEvent(kind: isDelete ? .delete : .put, kv: kv)
    }

    public func events(in range: KeyRange, from: Int64, through: Int64) async throws -> [WatchEvent] {
        let oldest = compacted.withLock { $0 }
        if from < oldest { throw StoreError.compacted(requested: from, compactRevision: oldest) }
        let recorded = replay.withLock { replay -> [WatchEvent]? in
            guard from >= replay.completeFrom else { return nil }
            return replay.events.filter { $0.revision >= from && $0.revision <= through && range.contains($0.kv.key) }
        }
        if let recorded { return recorded }
        // Older than memory: a watch of its own on etcd over every key, read until it reaches
        // `through`, keeping the range's events. Every revision the hub saw has an event under
        // the prefix, so the watch reaches `through`; a watch on the range alone would wait for
        // the range's next change when its last one is older than `through`.
        let collected = Mutex<[WatchEvent]>([])
        let reached = Mutex(false)
        let watch = try await client.watch(watchRequest(.prefix(""), from: from)) { response in
            if response.canceled {
                if response.compactRevision > 0 {
                    self.compacted.withLock { $0 = max($0, response.compactRevision) }
                    throw StoreError.compacted(requested: from, compactRevision: response.compactRevision)
                }
                throw StoreError(.io, "etcd cancelled a watch: \(response.cancelReason.isEmpty ? "no reason given" : response.cancelReason)")
            }
            try collected.withLock { collected in
                for wire in response.events {
                    let event = self.event(wire)
                    if event.revision > through { throw CollectedThrough() }
                    if event.revision == through { reached.withLock { $0 = true } }
                    if range.contains(event.kv.key) { collected.append(event) }
                }
                // A revision's events come in one answer.
                if reached.withLock({ $0 }) { throw CollectedThrough() }
            }
        }
        do {
            try await watch.wait()
        } catch is CollectedThrough {}
        return collected.withLock { $0 }
    }

    /// Ends a watch that has delivered every event up to the revision asked for.
    private struct CollectedThrough: Error {}
}
