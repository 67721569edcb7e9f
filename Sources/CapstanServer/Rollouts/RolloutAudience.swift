import CapstanCore
import Crypto
import Foundation

/// Who is in a rollout: the nodes (and identified API clients) its selector picks whose score
/// falls under its threshold, or, with `--nodes`, the nodes it admitted.
///
/// A name's score is the first 8 bytes of SHA-256 of `ROLLOUT NUL NAME`, big-endian: the same on
/// every replica and across restarts, and unrelated between rollouts. A step sets the threshold
/// so that the step's share of the nodes the selector picks now falls under it (the lowest
/// scores first, rounded up: 10 % of 10 nodes is one node, 10 % of 3 nodes is one too); the
/// threshold never goes down, so widening keeps every member, and nodes that join later are in
/// when their score is under it, displacing nobody. With no node to measure against, a step of
/// P % sets the threshold at P % of the score space. 100 % takes everyone.
struct RolloutAudience: Sendable, Hashable {
    var selector: Selector
    var threshold: UInt64
    var everyone: Bool
    /// With `--nodes`: exactly these nodes (API clients go by the threshold).
    var admitted: Set<String>?

    static func score(rollout: String, name: String) -> UInt64 {
        var bytes = Array(rollout.utf8)
        bytes.append(0)
        bytes += Array(name.utf8)
        return SHA256.hash(data: bytes).prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    /// Whether a node is a member.
    func containsNode(rollout: String, name: String, labels: [String: String]) -> Bool {
        guard selector.matches(labels: labels, name: name) else { return false }
        if let admitted { return everyone || admitted.contains(name) }
        return everyone || Self.score(rollout: rollout, name: name) < threshold
    }

    /// Whether an identified API client is a member: by the selector on its labels and name, and
    /// the threshold (with `--nodes` too, so that clients follow the share the nodes set).
    func containsClient(rollout: String, _ client: ClientIdentity) -> Bool {
        guard selector.matches(labels: client.labels, name: client.name) else { return false }
        return everyone || Self.score(rollout: rollout, name: client.name) < threshold
    }

    /// The share of the score space under the threshold, 0 to 1.
    var share: Double { everyone ? 1 : Double(threshold) / 18_446_744_073_709_551_616.0 }

    /// What a step sets, from what the previous one set and the nodes the selector picks now.
    struct Widening: Sendable, Hashable {
        var threshold: UInt64
        var everyone: Bool
        var admitted: [String]?
    }

    /// The threshold (and admitted nodes) after moving to a step of `percent` % or `nodes` nodes.
    ///
    /// - Parameters:
    ///   - eligible: names of the nodes the selector picks now.
    ///   - previous: what the step before set (nil at the first step).
    static func widen(rollout: String, percent: Int?, nodes: Int?, eligible: [String], previous: Widening?) -> Widening {
        if nodes == nil, (percent ?? 100) >= 100 { return Widening(threshold: .max, everyone: true, admitted: nil) }
        let scored = eligible.map { (name: $0, score: score(rollout: rollout, name: $0)) }.sorted { $0.score < $1.score }
        let floor = previous?.threshold ?? 0
        if let nodes {
            var admitted = previous?.admitted ?? []
            let known = Set(admitted)
            for node in scored where admitted.count < nodes && !known.contains(node.name) {
                admitted.append(node.name)
            }
            let highest = admitted.map { score(rollout: rollout, name: $0) }.max()
            let threshold = highest.map { $0 == .max ? .max : $0 + 1 } ?? floor
            return Widening(threshold: max(floor, threshold), everyone: false, admitted: admitted)
        }
        let percent = max(1, percent ?? 100)
        let threshold: UInt64
        if scored.isEmpty {
            threshold = UInt64(percent) * (UInt64.max / 100)
        } else {
            let count = (percent * scored.count + 99) / 100
            let last = scored[count - 1].score
            threshold = last == .max ? .max : last + 1
        }
        return Widening(threshold: max(floor, threshold), everyone: false, admitted: nil)
    }
}
