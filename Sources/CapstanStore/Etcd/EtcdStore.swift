import EtcdAPI
import Foundation
import Logging
import Synchronization

/// The storage contract on an etcd cluster (3.4 or later), through its gRPC API.
///
/// Every key lives under `prefix`, so several installations can share one cluster. Revisions,
/// compares, leases and compaction are etcd's own. Watches fan out in process: `run()` keeps one
/// etcd watch on the whole prefix and feeds a `WatchHub`, so etcd sees one watcher per server
/// process however many clients watch.
public final class EtcdStore: KeyValueStore, Sendable {
    let client: EtcdClient
    let keys: EtcdKeySpace
    let hub: WatchHub
    let logger: Logger
    /// The compaction point as last learned (etcd has no call that answers it directly).
    let compacted: Mutex<Int64>
    let replay: Mutex<Replay>

    /// Connects to the cluster at `endpoints` (e.g. `http://127.0.0.1:2379`).
    ///
    /// - Throws: `StoreError.io` when no member answers.
    ///
    /// - Parameter timeout: how long a member may take to answer before calls (and the watch
    ///   feed) move to another.
    public init(
        endpoints: [String], prefix: String = "", timeout: Duration = .seconds(10), watchBufferLimit: Int = 10_000,
        logger: Logger = Logger(label: "capstan.store.etcd")
    ) async throws {
        guard !endpoints.isEmpty else { throw StoreError(.invalidArgument, "etcd needs at least one endpoint") }
        self.client = try EtcdClient(endpoints: endpoints, requestTimeout: timeout, logger: logger)
        self.keys = EtcdKeySpace(prefix: prefix)
        self.logger = logger
        let revision: Int64
        let compactRevision: Int64
        do {
            revision = try await Self.currentRevision(client: client, keys: keys)
            compactRevision = try await Self.findCompactRevision(client: client, keys: keys, below: revision)
        } catch {
            await client.shutdown()
            throw error
        }
        self.compacted = Mutex(compactRevision)
        self.hub = WatchHub(revision: revision, bufferLimit: watchBufferLimit)
        self.replay = Mutex(Replay(completeFrom: revision + 1, capacity: watchBufferLimit))
    }

    /// Closes the connections to etcd.
    public func shutdown() async {
        await client.shutdown()
    }

    // MARK: KeyValueStore

    public func range(_ request: RangeRequest) async throws -> RangeResult {
        let wire = keys.wire(request)
        let response = try await checkCompaction(request.revision) {
            try await client.call("Range", idempotent: true) { try await $0.kv.range(wire, options: $1) }
        }
        return keys.result(response)
    }

    public func txn(_ request: TxnRequest) async throws -> TxnResult {
        var wire = Etcdserverpb_TxnRequest()
        wire.compare = request.compares.map(keys.wire)
        wire.success = request.success.map(keys.wire)
        wire.failure = request.failure.map(keys.wire)
        let oldest = (request.success + request.failure).compactMap { op -> Int64? in
            if case .range(let range) = op { return range.revision }
            return nil
        }.min()
        let response = try await checkCompaction(oldest) { [wire] in
            try await client.call("Txn", idempotent: request.isReadOnly) { try await $0.kv.txn(wire, options: $1) }
        }
        let ops = response.succeeded ? request.success : request.failure
        guard ops.count == response.responses.count else {
            throw StoreError(.io, "etcd answered a transaction of \(ops.count) operations with \(response.responses.count) results")
        }
        let revision = response.header.revision
        var results: [TxnOpResult] = []
        for (op, answer) in zip(ops, response.responses) {
            switch (op, answer.response) {
            case (.put(let key, let value, let lease), .responsePut(let put)):
                let previous = put.hasPrevKv ? put.prevKv : nil
                results.append(
                    .put(
                        KeyValue(
                            key: key, value: value,
                            createRevision: previous.map(\.createRevision) ?? revision,
                            modRevision: revision,
                            version: (previous?.version ?? 0) + 1,
                            lease: lease == 0 ? nil : lease)))
            case (.delete, .responseDeleteRange(let deleted)):
                results.append(.delete(deleted: Int(deleted.deleted)))
            case (.range, .responseRange(let answered)):
                results.append(.range(keys.result(answered)))
            default:
                throw StoreError(.io, "etcd answered a transaction operation with the result of another kind")
            }
        }
        return TxnResult(succeeded: response.succeeded, revision: revision, results: results)
    }

    public func watch(_ range: KeyRange, fromRevision revision: Int64?) -> WatchStream {
        WatchStream { [hub] in
            HubWatchCursor(hub: hub, history: self, range: range, fromRevision: revision)
        }
    }

    public func grantLease(ttl: Int64) async throws -> Lease {
        guard ttl > 0 else {
            throw StoreError(.invalidArgument, "lease TTL must be at least 1 second, got \(ttl)")
        }
        var request = Etcdserverpb_LeaseGrantRequest()
        request.ttl = ttl
        let answer = try await client.call("LeaseGrant", idempotent: false) { [request] in
            try await $0.lease.leaseGrant(request, options: $1)
        }
        if !answer.error.isEmpty { throw StoreError(.io, "etcd refused the lease: \(answer.error)") }
        return Lease(id: answer.id, ttl: answer.ttl)
    }

    public func keepAlive(_ lease: LeaseID) async throws -> Int64 {
        guard let answer = try await client.keepAliveOnce(lease) else {
            throw StoreError(.io, "etcd ended the keep-alive of lease \(lease) without an answer")
        }
        guard answer.ttl > 0 else { throw StoreError(.leaseNotFound, "lease \(lease) not found") }
        return answer.ttl
    }

    public func revokeLease(_ lease: LeaseID) async throws {
        var request = Etcdserverpb_LeaseRevokeRequest()
        request.id = lease
        _ = try await client.call("LeaseRevoke", idempotent: true) { [request] in
            try await $0.lease.leaseRevoke(request, options: $1)
        }
    }

    public func compact(upTo revision: Int64) async throws {
        var request = Etcdserverpb_CompactionRequest()
        request.revision = revision
        request.physical = true
        do {
            _ = try await client.call("Compact", idempotent: true) { [request] in try await $0.kv.compact(request, options: $1) }
            compacted.withLock { $0 = max($0, revision) }
        } catch let error as StoreError where error.code == .compacted {
            let oldest = try await learnCompactRevision()
            throw StoreError.compacted(requested: revision, compactRevision: oldest)
        } catch let error as StoreError where error.code == .futureRevision {
            throw StoreError(.futureRevision, "cannot compact to \(revision): it is newer than the current revision")
        }
    }

    public func status() async throws -> StoreStatus {
        let revision = try await Self.currentRevision(client: client, keys: keys)
        return StoreStatus(revision: revision, compactRevision: compacted.withLock { $0 }, watchers: hub.count)
    }

    public func run() async throws {
        try await runFeed()
    }

    // MARK: Helpers

    /// Runs `body`; turns etcd's bare "compacted" into the store's error with the compaction point.
    private func checkCompaction<T>(_ requested: Int64?, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StoreError where error.code == .compacted {
            let oldest = try await learnCompactRevision()
            throw StoreError.compacted(requested: requested ?? 0, compactRevision: oldest)
        }
    }

    /// Looks the compaction point up again (another process may have compacted).
    func learnCompactRevision() async throws -> Int64 {
        let revision = try await Self.currentRevision(client: client, keys: keys)
        let found = try await Self.findCompactRevision(client: client, keys: keys, below: revision)
        return compacted.withLock { current in
            current = max(current, found)
            return current
        }
    }

    static func currentRevision(client: EtcdClient, keys: EtcdKeySpace) async throws -> Int64 {
        let request = keys.wire(RangeRequest(.key(""), countOnly: true))
        return try await client.call("Range", idempotent: true) { try await $0.kv.range(request, options: $1) }.header.revision
    }

    /// The oldest readable revision, by bisection: a read at a revision below it fails.
    static func findCompactRevision(client: EtcdClient, keys: EtcdKeySpace, below current: Int64) async throws -> Int64 {
        func readable(_ revision: Int64) async throws -> Bool {
            let request = keys.wire(RangeRequest(.key(""), revision: revision, countOnly: true))
            do {
                _ = try await client.call("Range", idempotent: true) { try await $0.kv.range(request, options: $1) }
                return true
            } catch let error as StoreError where error.code == .compacted {
                return false
            }
        }
        if current <= 1 { return 0 }
        if try await readable(1) { return 0 }
        var low: Int64 = 1  // not readable
        var high = current  // readable
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if try await readable(middle) { high = middle } else { low = middle }
        }
        return high
    }
}

/// Maps the store's keys into etcd's under a prefix, and etcd's answers back.
struct EtcdKeySpace: Sendable {
    let prefix: String

    func key(_ key: String) -> Data { Data((prefix + key).utf8) }

    private static func nonEmpty(_ key: Data) -> Data { key.isEmpty ? Data([0]) : key }

    func userKey(_ data: Data) -> String {
        String(decoding: data.dropFirst(prefix.utf8.count), as: UTF8.self)
    }

    /// etcd's `key` and `range_end` for `range`, inside the prefix (an empty `rangeEnd`: only `key`).
    func bounds(_ range: KeyRange) -> (key: Data, rangeEnd: Data) {
        // etcd refuses an empty key; "\0" is the lowest one.
        if case .key(let only) = range { return (Self.nonEmpty(key(only)), Data()) }
        let (lower, upper) = range.bounds
        let start = Self.nonEmpty(Data(prefix.utf8) + lower)
        if let upper { return (start, Data(prefix.utf8) + upper) }
        // Unbounded: to the end of the prefix, or of the whole key space ("\0").
        return (start, KeyRange.prefixEnd(Array(prefix.utf8)).map { Data($0) } ?? Data([0]))
    }

    func wire(_ request: RangeRequest) -> Etcdserverpb_RangeRequest {
        var wire = Etcdserverpb_RangeRequest()
        (wire.key, wire.rangeEnd) = bounds(request.range)
        if let limit = request.limit, limit > 0 { wire.limit = Int64(limit) }
        if let revision = request.revision, revision > 0 { wire.revision = revision }
        if request.descending {
            wire.sortOrder = .descend
            wire.sortTarget = .key
        }
        wire.keysOnly = request.keysOnly
        wire.countOnly = request.countOnly
        return wire
    }

    func wire(_ op: TxnOp) -> Etcdserverpb_RequestOp {
        var wire = Etcdserverpb_RequestOp()
        switch op {
        case .put(let key, let value, let lease):
            var put = Etcdserverpb_PutRequest()
            put.key = self.key(key)
            put.value = value
            put.lease = lease ?? 0
            put.prevKv = true
            wire.requestPut = put
        case .delete(let range):
            var delete = Etcdserverpb_DeleteRangeRequest()
            (delete.key, delete.rangeEnd) = bounds(range)
            wire.requestDeleteRange = delete
        case .range(let request):
            wire.requestRange = self.wire(request)
        }
        return wire
    }

    func wire(_ compare: Compare) -> Etcdserverpb_Compare {
        var wire = Etcdserverpb_Compare()
        wire.key = key(compare.key)
        wire.result =
            switch compare.op {
            case .equal: .equal
            case .notEqual: .notEqual
            case .less: .less
            case .greater: .greater
            }
        switch compare.target {
        case .version(let value): (wire.target, wire.version) = (.version, value)
        case .createRevision(let value): (wire.target, wire.createRevision) = (.create, value)
        case .modRevision(let value): (wire.target, wire.modRevision) = (.mod, value)
        case .value(let value): (wire.target, wire.value) = (.value, value)
        case .lease(let value): (wire.target, wire.lease) = (.lease, value)
        }
        return wire
    }

    func keyValue(_ kv: Etcdserverpb_KeyValue) -> KeyValue {
        KeyValue(
            key: userKey(kv.key), value: kv.value, createRevision: kv.createRevision, modRevision: kv.modRevision,
            version: kv.version, lease: kv.lease == 0 ? nil : kv.lease)
    }

    func result(_ response: Etcdserverpb_RangeResponse) -> RangeResult {
        RangeResult(
            kvs: response.kvs.map(keyValue), count: Int(response.count), more: response.more,
            revision: response.header.revision)
    }
}
