import CapstanCore

extension StoreLayout {
    /// Rollout records: `rollouts/NAME`.
    static let rollouts = root + "rollouts/"
    /// Each rollout's candidates: `rollout-candidates/NAME/config/NS/PATH` (a config record) and
    /// `rollout-candidates/NAME/template/TEMPLATE` (a template record). Kept after the rollout
    /// closes: an aborted rollout's candidates stay in history as abandoned.
    static let rolloutCandidates = root + "rollout-candidates/"
    /// The open rollout of a config key, by name: `config-rollout/NS/PATH`. Written with every
    /// change of the rollout that can change what the key's readers see, and deleted when it
    /// closes, so that one watch of it follows the key's gray release.
    static let configRollouts = root + "config-rollout/"
    /// The open rollout of a template, by name: `template-rollout/TEMPLATE`.
    static let templateRollouts = root + "template-rollout/"
    /// Every rollout that ever held a candidate of a key: `config-rollout-history/NS/PATH@NAME`.
    static let configRolloutHistory = root + "config-rollout-history/"

    static func rollout(_ name: String) -> String { rollouts + name }

    static func rolloutCandidatePrefix(_ rollout: String) -> String { rolloutCandidates + rollout + "/" }

    static func configCandidate(_ rollout: String, key: String) -> String { rolloutCandidatePrefix(rollout) + "config/" + key }

    static func templateCandidate(_ rollout: String, template: String) -> String { rolloutCandidatePrefix(rollout) + "template/" + template }

    static func configRollout(_ key: String) -> String { configRollouts + key }

    static func templateRollout(_ name: String) -> String { templateRollouts + name }

    static func configRolloutHistoryPrefix(_ key: String) -> String { configRolloutHistory + key + "@" }

    static func configRolloutHistory(_ key: String, rollout: String) -> String { configRolloutHistoryPrefix(key) + rollout }
}
