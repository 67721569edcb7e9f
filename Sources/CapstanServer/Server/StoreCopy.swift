import CapstanCore
import CapstanStore
import Crypto
import Foundation

/// Copies an installation's data from one store to another (`capstan store copy`), e.g. from
/// SQLite to etcd when outgrowing one machine, or back.
///
/// The source is read at one revision, so the copy is a consistent snapshot. Keys written in one
/// source revision are written in one target transaction, in the source's revision order: every
/// config version keeps its place in history, though the target numbers revisions its own way.
/// Keys attached to a lease (liveness, locks) belong to live processes and are not copied.
public enum StoreCopy {
    public struct Report: Sendable, Hashable {
        /// Keys copied.
        public var keys: Int
        /// Source revisions replayed, one target transaction each.
        public var revisions: Int
        /// Keys left out because a lease holds them.
        public var skippedLeased: Int
        /// The source revision the snapshot was read at.
        public var sourceRevision: Int64
        /// Digest of what was copied, equal on both sides (see `digest`).
        public var checksum: String
    }

    /// The digest of a set of keys: their count and a SHA-256 over, in key order, each key, its
    /// value, and the rank of its revision among the set's revisions. Two stores with the same
    /// data written in the same order agree, whatever numbers their revisions carry.
    public struct Digest: Sendable, Hashable {
        public var count: Int
        public var checksum: String
    }

    /// Copies everything under `prefix` from `source` to `target`, then reads the target back and
    /// checks its count and checksum against the snapshot.
    ///
    /// - Throws: `CapstanError.conflict` when the target already holds keys under `prefix`;
    ///   `.internal` when the read-back does not match.
    public static func copy(
        prefix: String = "/capstan/", from source: any KeyValueStore, to target: any KeyValueStore,
        pageSize: Int = 500
    ) async throws -> Report {
        let existing = try await target.range(RangeRequest(.prefix(prefix), countOnly: true)).count
        guard existing == 0 else {
            throw CapstanError(.conflict, "the target store already holds \(existing) keys under \(prefix); copy needs an empty target")
        }
        let snapshot = try await read(prefix: prefix, from: source, pageSize: pageSize)
        let copied = snapshot.kvs.filter { $0.lease == nil }
        let groups = Dictionary(grouping: copied, by: \.modRevision).sorted { $0.key < $1.key }
        for (_, group) in groups {
            let puts = group.map { TxnOp.put(key: $0.key, value: $0.value) }
            _ = try await target.txn(TxnRequest(success: puts))
        }
        let expected = digest(copied)
        let written = digest(try await read(prefix: prefix, from: target, pageSize: pageSize).kvs)
        guard written == expected else {
            throw CapstanError(
                .internal,
                "the copy does not match its source: \(written.count) keys with checksum \(written.checksum) written, \(expected.count) with \(expected.checksum) read")
        }
        return Report(
            keys: copied.count, revisions: groups.count, skippedLeased: snapshot.kvs.count - copied.count,
            sourceRevision: snapshot.revision, checksum: expected.checksum)
    }

    /// Every key under `prefix` at one revision, read in pages.
    static func read(prefix: String, from store: any KeyValueStore, pageSize: Int) async throws -> (kvs: [KeyValue], revision: Int64) {
        // The prefixes copied are ASCII (`/capstan/`), so their end is a string too.
        let end = KeyRange.prefixEnd(Array(prefix.utf8)).map { String(decoding: $0, as: UTF8.self) } ?? "\u{7F}"
        var kvs: [KeyValue] = []
        var revision: Int64?
        var range = KeyRange.prefix(prefix)
        while true {
            let page = try await store.range(RangeRequest(range, revision: revision, limit: pageSize))
            revision = revision ?? page.revision
            kvs += page.kvs
            guard page.more, let last = page.kvs.last else { break }
            range = .interval(from: last.key + "\u{0}", to: end)
        }
        return (kvs, revision ?? 0)
    }

    /// The digest of `kvs` (see `Digest`).
    public static func digest(_ kvs: [KeyValue]) -> Digest {
        let ranks = Dictionary(
            uniqueKeysWithValues: Set(kvs.map(\.modRevision)).sorted().enumerated().map { ($0.element, $0.offset) })
        var hash = SHA256()
        for kv in kvs.sorted(by: { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }) {
            for field in [Data(kv.key.utf8), kv.value, Data(String(ranks[kv.modRevision] ?? 0).utf8)] {
                withUnsafeBytes(of: UInt64(field.count).bigEndian) { hash.update(bufferPointer: $0) }
                hash.update(data: field)
            }
        }
        return Digest(count: kvs.count, checksum: "sha256:" + ConfigRecord.hex(hash.finalize()))
    }

    /// The digest of what `store` holds under `prefix` now (leased keys left out).
    public static func digest(prefix: String = "/capstan/", of store: any KeyValueStore) async throws -> Digest {
        digest(try await read(prefix: prefix, from: store, pageSize: 500).kvs.filter { $0.lease == nil })
    }
}
