import CapstanCore
import Foundation

/// A rollout as stored at `rollouts/NAME` (JSON). Candidates' content lives beside it (see
/// `StoreLayout.rolloutCandidates`); the record lists them.
struct RolloutRecord: Codable, Sendable {
    static let schema = 1

    var schema = RolloutRecord.schema
    var spec: RolloutSpec
    var state: RolloutState
    var step: Int
    /// What the current step set (`RolloutAudience`). The threshold is kept as text: JSON
    /// numbers past 2^53 do not survive every reader.
    var threshold: String
    var everyone: Bool
    var admitted: [String]?
    var candidates: [RolloutCandidate]
    var transitions: [RolloutTransition]
    var createdAt: Date
    var stepStartedAt: Date

    var widening: RolloutAudience.Widening {
        get { .init(threshold: UInt64(threshold) ?? 0, everyone: everyone, admitted: admitted) }
        set {
            threshold = String(newValue.threshold)
            everyone = newValue.everyone
            admitted = newValue.admitted
        }
    }

    var audience: RolloutAudience {
        RolloutAudience(
            selector: (try? Selector(spec.selector)) ?? Selector.everything, threshold: UInt64(threshold) ?? 0, everyone: everyone,
            admitted: admitted.map(Set.init))
    }

    func candidate(_ kind: RolloutCandidate.Kind, _ name: String) -> RolloutCandidate? {
        candidates.first { $0.kind == kind && $0.name == name }
    }

    func info(name: String, revision: Int64) -> RolloutInfo {
        RolloutInfo(
            name: name, spec: spec, state: state, step: step, share: audience.share, admitted: admitted, candidates: candidates,
            transitions: transitions, createdAt: createdAt, stepStartedAt: stepStartedAt, revision: revision)
    }

    func encoded() throws -> Data { try RecordCoding.encoder.encode(self) }

    static func decode(_ data: Data) throws -> RolloutRecord { try RecordCoding.decoder.decode(RolloutRecord.self, from: data) }
}
