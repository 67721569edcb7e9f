import CapstanCore
import CapstanStore
import Foundation
import Logging

/// Health checks: records at `/capstan/checks/NAME`, each node's last status at
/// `/capstan/check-status/NAME/NODE`. Agents run the checks (they come with the template set
/// the server pushes) and report each change of status.
public final class CheckService: Sendable {
    let store: any KeyValueStore
    let logger: Logger

    public init(store: any KeyValueStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    struct Record: Codable, Sendable {
        var spec: CheckSpec
        var updatedAt: Date
        var onlyOn: [String]?

        var binding: NodeBinding { NodeBinding(selector: spec.selector, onlyOn: onlyOn) }
    }

    struct Status: Codable, Sendable {
        var status: CheckStatus
        var output: String
        var since: Date
    }

    /// - Parameter onlyOn: for a command check, its author's job run selectors (see `NodeBinding`).
    public func put(_ name: String, _ spec: CheckSpec, onlyOn: [String]? = nil) async throws -> CheckInfo {
        try Self.validate(name: name, spec: spec)
        let now = Date()
        _ = try await store.put(StoreLayout.check(name), try RecordCoding.encoder.encode(Record(spec: spec, updatedAt: now, onlyOn: onlyOn)))
        logger.info("check saved", metadata: ["check": "\(name)"])
        return CheckInfo(name: name, spec: spec, updatedAt: now, onlyOn: onlyOn)
    }

    public func list() async throws -> CheckList {
        CheckList(
            items: try await records().map {
                CheckInfo(name: $0.name, spec: $0.record.spec, updatedAt: $0.record.updatedAt, onlyOn: $0.record.onlyOn)
            })
    }

    /// The check and every node it picks now, with their statuses.
    public func check(_ name: String, nodes registry: NodeRegistry) async throws -> CheckInfo {
        guard let kv = try await store.get(StoreLayout.check(name)) else { throw Self.notFound(name) }
        let record = try RecordCoding.decoder.decode(Record.self, from: kv.value)
        let picked = try await registry.list(selector: try Selector(record.spec.selector)).filter {
            record.binding.matches(labels: $0.labels, name: $0.name)
        }
        let statuses = try await self.statuses(of: name)
        let nodes = picked.map { node in
            let status = statuses[node.name]
            return CheckInfo.Node(name: node.name, status: status?.status ?? .pending, output: status?.output, since: status?.since)
        }
        return CheckInfo(name: name, spec: record.spec, updatedAt: record.updatedAt, nodes: nodes, onlyOn: record.onlyOn)
    }

    public func remove(_ name: String) async throws {
        let result = try await store.txn(
            TxnRequest(success: [.delete(.key(StoreLayout.check(name))), .delete(.prefix(StoreLayout.checkStatusPrefix(name)))]))
        guard case .delete(let deleted) = result.results.first, deleted > 0 else { throw Self.notFound(name) }
    }

    func records() async throws -> [(name: String, record: Record)] {
        try await store.range(RangeRequest(.prefix(StoreLayout.checks))).kvs.compactMap { kv in
            (try? RecordCoding.decoder.decode(Record.self, from: kv.value)).map { (String(kv.key.dropFirst(StoreLayout.checks.count)), $0) }
        }
    }

    /// Every check ready to send, with its selector.
    func prepared() async throws -> [(binding: NodeBinding, assignment: CheckAssignment)] {
        try await records().map { ($0.record.binding, CheckAssignment(name: $0.name, spec: $0.record.spec)) }
    }

    /// Keeps a node's report of a check (a change of status), if the check still exists.
    func record(_ result: CheckResult, from node: String) async {
        do {
            let value = try RecordCoding.encoder.encode(Status(status: result.status, output: String(result.output.prefix(4096)), since: result.time))
            _ = try await store.txn(
                TxnRequest(
                    compares: [Compare(key: StoreLayout.check(result.check), .version(0), .greater)],
                    success: [.put(key: StoreLayout.checkStatus(result.check, node: node), value: value)]))
        } catch {
            logger.warning("could not record a check status", metadata: ["check": "\(result.check)", "node": "\(node)", "error": "\(error)"])
        }
    }

    func statuses(of check: String) async throws -> [String: Status] {
        var statuses: [String: Status] = [:]
        let prefix = StoreLayout.checkStatusPrefix(check)
        for kv in try await store.range(RangeRequest(.prefix(prefix))).kvs {
            if let status = try? RecordCoding.decoder.decode(Status.self, from: kv.value) { statuses[String(kv.key.dropFirst(prefix.count))] = status }
        }
        return statuses
    }

    /// Every node's check statuses, of the checks that still pick it: `[node: [check: status]]`.
    public func statusesByNode(_ nodes: [NodeInfo]) async throws -> [String: [String: CheckStatus]] {
        let checks = try await records()
        var result: [String: [String: CheckStatus]] = [:]
        for (name, record) in checks {
            let binding = record.binding
            let statuses = try await self.statuses(of: name)
            for node in nodes where binding.matches(labels: node.labels, name: node.name) {
                result[node.name, default: [:]][name] = statuses[node.name]?.status ?? .pending
            }
        }
        return result
    }

    // MARK: Validation

    static func validate(name: String, spec: CheckSpec) throws(CapstanError) {
        do { try NodeName.validate(name) } catch {
            throw CapstanError(.invalidArgument, error.message.replacingOccurrences(of: "node name", with: "check name"))
        }
        _ = try Selector(spec.selector)
        let target = spec.target.trimmingCharacters(in: .whitespaces)
        switch spec.kind {
        case .http:
            guard let url = URL(string: target), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
                throw CapstanError(.invalidArgument, "--http \(spec.target.quoted) must be an http:// or https:// URL")
            }
        case .tcp:
            guard let colon = target.lastIndex(of: ":"), !target[..<colon].isEmpty, let port = Int(target[target.index(after: colon)...]),
                (1...65535).contains(port)
            else {
                throw CapstanError(.invalidArgument, "--tcp \(spec.target.quoted) must be HOST:PORT with a port from 1 to 65535")
            }
        case .command:
            guard !target.isEmpty else { throw CapstanError(.invalidArgument, "--command is empty") }
        }
        guard spec.intervalMilliseconds >= 50, spec.intervalMilliseconds <= 86_400_000 else {
            throw CapstanError(.invalidArgument, "--interval must be from 50ms to 24h")
        }
        guard spec.timeoutMilliseconds > 0, spec.timeoutMilliseconds <= spec.intervalMilliseconds else {
            throw CapstanError(.invalidArgument, "--timeout must be more than 0 and at most the interval")
        }
        guard (1...100).contains(spec.failuresBeforeCritical), (1...100).contains(spec.successesBeforePassing) else {
            throw CapstanError(.invalidArgument, "--failures-before-critical and --successes-before-passing must be from 1 to 100")
        }
    }

    static func notFound(_ name: String) -> CapstanError {
        CapstanError(.notFound, "check \(name.quoted) not found")
    }
}
