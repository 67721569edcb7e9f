import CapstanStore

/// A store that passes everything to the store it wraps: a test's wrapper implements only what
/// it changes (counting reads, stalling watches) and inherits the rest.
public protocol WrappingStore: KeyValueStore {
    var base: any KeyValueStore { get }
}

extension WrappingStore {
    public func range(_ request: RangeRequest) async throws -> RangeResult { try await base.range(request) }
    public func txn(_ request: TxnRequest) async throws -> TxnResult { try await base.txn(request) }
    public func submit(_ request: TxnRequest) async -> SubmittedTxn { await base.submit(request) }
    public func watch(_ range: KeyRange, fromRevision revision: Int64?) -> WatchStream { base.watch(range, fromRevision: revision) }
    public func grantLease(ttl: Int64) async throws -> Lease { try await base.grantLease(ttl: ttl) }
    public func keepAlive(_ lease: LeaseID) async throws -> Int64 { try await base.keepAlive(lease) }
    public func revokeLease(_ lease: LeaseID) async throws { try await base.revokeLease(lease) }
    public func compact(upTo revision: Int64) async throws { try await base.compact(upTo: revision) }
    public func status() async throws -> StoreStatus { try await base.status() }
    public func run() async throws { try await base.run() }
}
