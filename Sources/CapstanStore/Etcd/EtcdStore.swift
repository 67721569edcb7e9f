import Foundation
import Logging
import Synchronization

/// The storage contract on an etcd cluster (3.4 or later), through its HTTP/JSON gateway.
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
        self.client = EtcdClient(endpoints: endpoints, requestTimeout: timeout, logger: logger)
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
        let response: EtcdWire.RangeResponse = try await checkCompaction(request.revision) {
            try await client.call("/v3/kv/range", keys.wire(request), idempotent: true)
        }
        return keys.result(response, keysOnly: request.keysOnly)
    }

    public func txn(_ request: TxnRequest) async throws -> TxnResult {
        let wire = EtcdWire.TxnRequest(
            compare: request.compares.map(keys.wire),
            success: request.success.map(keys.wire),
            failure: request.failure.map(keys.wire))
        let oldest = (request.success + request.failure).compactMap { op -> Int64? in
            if case .range(let range) = op { return range.revision }
            return nil
        }.min()
        let response: EtcdWire.TxnResponse = try await checkCompaction(oldest) {
            try await client.call("/v3/kv/txn", wire, idempotent: request.isReadOnly)
        }
        let ops = response.succeeded ? request.success : request.failure
        guard ops.count == response.responses.count else {
            throw StoreError(.io, "etcd answered a transaction of \(ops.count) operations with \(response.responses.count) results")
        }
        let revision = response.header.revision
        var results: [TxnOpResult] = []
        for (op, answer) in zip(ops, response.responses) {
            switch op {
            case .put(let key, let value, let lease):
                let previous = answer.put?.prevKV
                results.append(
                    .put(
                        KeyValue(
                            key: key, value: value,
                            createRevision: previous.map(\.createRevision) ?? revision,
                            modRevision: revision,
                            version: (previous?.version ?? 0) + 1,
                            lease: lease == 0 ? nil : lease)))
            case .delete:
                results.append(.delete(deleted: Int(answer.deleteRange?.deleted ?? 0)))
            case .range(let range):
                guard let answered = answer.range else {
                    throw StoreError(.io, "etcd answered a range inside a transaction without its result")
                }
                results.append(.range(keys.result(answered, keysOnly: range.keysOnly)))
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
        let answer: EtcdWire.LeaseResponse = try await client.call(
            "/v3/lease/grant", EtcdWire.LeaseGrantRequest(TTL: ttl, ID: 0), idempotent: false)
        if let error = answer.error, !error.isEmpty { throw StoreError(.io, "etcd refused the lease: \(error)") }
        return Lease(id: answer.id, ttl: answer.ttl)
    }

    public func keepAlive(_ lease: LeaseID) async throws -> Int64 {
        let stream = try await client.stream(
            "/v3/lease/keepalive", EtcdWire.LeaseIDRequest(ID: lease), results: EtcdWire.LeaseResponse.self)
        for try await result in stream {
            guard result.ttl > 0 else { throw StoreError(.leaseNotFound, "lease \(lease) not found") }
            return result.ttl
        }
        throw StoreError(.io, "etcd ended the keep-alive of lease \(lease) without an answer")
    }

    public func revokeLease(_ lease: LeaseID) async throws {
        let _: EtcdWire.HeaderOnly = try await client.call("/v3/lease/revoke", EtcdWire.LeaseIDRequest(ID: lease), idempotent: true)
    }

    public func compact(upTo revision: Int64) async throws {
        do {
            let _: EtcdWire.HeaderOnly = try await client.call(
                "/v3/kv/compaction", EtcdWire.CompactionRequest(revision: revision, physical: true), idempotent: true)
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
        let response: EtcdWire.RangeResponse = try await client.call(
            "/v3/kv/range", keys.wire(RangeRequest(.key(""), countOnly: true)), idempotent: true)
        return response.header.revision
    }

    /// The oldest readable revision, by bisection: a read at a revision below it fails.
    static func findCompactRevision(client: EtcdClient, keys: EtcdKeySpace, below current: Int64) async throws -> Int64 {
        func readable(_ revision: Int64) async throws -> Bool {
            do {
                let _: EtcdWire.RangeResponse = try await client.call(
                    "/v3/kv/range", keys.wire(RangeRequest(.key(""), revision: revision, countOnly: true)), idempotent: true)
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

    /// etcd's `key` and `range_end` for `range`, inside the prefix.
    func bounds(_ range: KeyRange) -> (key: Data, rangeEnd: Data?) {
        // etcd refuses an empty key; "\0" is the lowest one.
        if case .key(let only) = range { return (Self.nonEmpty(key(only)), nil) }
        let (lower, upper) = range.bounds
        let start = Self.nonEmpty(Data(prefix.utf8) + lower)
        if let upper { return (start, Data(prefix.utf8) + upper) }
        // Unbounded: to the end of the prefix, or of the whole key space ("\0").
        return (start, KeyRange.prefixEnd(Array(prefix.utf8)).map { Data($0) } ?? Data([0]))
    }

    func wire(_ request: RangeRequest) -> EtcdWire.RangeRequest {
        let (key, rangeEnd) = bounds(request.range)
        return EtcdWire.RangeRequest(
            key: key, range_end: rangeEnd,
            limit: request.limit.flatMap { $0 > 0 ? Int64($0) : nil },
            revision: request.revision.flatMap { $0 > 0 ? $0 : nil },
            sort_order: request.descending ? "DESCEND" : nil,
            sort_target: request.descending ? "KEY" : nil,
            keys_only: request.keysOnly ? true : nil,
            count_only: request.countOnly ? true : nil)
    }

    func wire(_ op: TxnOp) -> EtcdWire.RequestOp {
        switch op {
        case .put(let key, let value, let lease):
            return EtcdWire.RequestOp(
                request_put: EtcdWire.PutRequest(key: self.key(key), value: value, lease: lease == 0 ? nil : lease, prev_kv: true))
        case .delete(let range):
            let (key, rangeEnd) = bounds(range)
            return EtcdWire.RequestOp(request_delete_range: EtcdWire.DeleteRangeRequest(key: key, range_end: rangeEnd))
        case .range(let request):
            return EtcdWire.RequestOp(request_range: wire(request))
        }
    }

    func wire(_ compare: Compare) -> EtcdWire.Compare {
        let result =
            switch compare.op {
            case .equal: "EQUAL"
            case .notEqual: "NOT_EQUAL"
            case .less: "LESS"
            case .greater: "GREATER"
            }
        var wire = EtcdWire.Compare(result: result, target: "", key: key(compare.key))
        switch compare.target {
        case .version(let value): (wire.target, wire.version) = ("VERSION", value)
        case .createRevision(let value): (wire.target, wire.create_revision) = ("CREATE", value)
        case .modRevision(let value): (wire.target, wire.mod_revision) = ("MOD", value)
        case .value(let value): (wire.target, wire.value) = ("VALUE", value)
        case .lease(let value): (wire.target, wire.lease) = ("LEASE", value)
        }
        return wire
    }

    func keyValue(_ kv: EtcdWire.KeyValue) -> KeyValue {
        KeyValue(
            key: userKey(kv.key), value: kv.value, createRevision: kv.createRevision, modRevision: kv.modRevision,
            version: kv.version, lease: kv.lease == 0 ? nil : kv.lease)
    }

    func result(_ response: EtcdWire.RangeResponse, keysOnly: Bool) -> RangeResult {
        RangeResult(
            kvs: response.kvs.map(keyValue), count: Int(response.count), more: response.more,
            revision: response.header.revision)
    }
}
