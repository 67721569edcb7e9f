import CapstanCore

/// The nodes a template or check binds: its selector, narrowed for one that runs commands to
/// the selectors of its author's `job` run rules (`onlyOn`), as a schedule is, so that
/// `template` or `check` rights do not run commands where the author's jobs may not.
struct NodeBinding: Sendable {
    var selector: Selector?
    var onlyOn: [Selector]?

    init(selector: String, onlyOn: [String]?) {
        self.selector = try? Selector(selector)
        self.onlyOn = onlyOn.map { $0.compactMap { try? Selector($0) } }
    }

    func matches(labels: [String: String], name: String) -> Bool {
        guard let selector, selector.matches(labels: labels, name: name) else { return false }
        guard let onlyOn else { return true }
        return onlyOn.contains { $0.matches(labels: labels, name: name) }
    }
}

extension CapstanRequestContext {
    /// For a template or check that runs commands: the selectors of the caller's job run rules
    /// (nil: any node); refused when the caller may run jobs nowhere.
    func commandScope(_ resource: AccessRule.Resource) throws -> [String]? {
        let caller = try requireCaller()
        let selectors = caller.role.jobRunSelectors
        if selectors?.isEmpty == true {
            throw CapstanError(
                .forbidden,
                "role \(caller.role.name.quoted) may run jobs on no node, so its \(resource.rawValue)s may not run commands (give it a job run rule)")
        }
        return selectors
    }
}
