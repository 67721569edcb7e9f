import CapstanCore
import CapstanStore
import Crypto
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Templates: config files rendered on the nodes a selector picks. Records live at
/// `/capstan/templates/NAME`, each node's last report at `/capstan/template-status/NAME/NODE`.
public final class TemplateService: Sendable {
    let store: any KeyValueStore
    let logger: Logger
    /// The keys secrets are decrypted with, and whether they may be sent to nodes at all: only
    /// when every agent connection is mutual TLS.
    let secrets: SecretKeyring?
    let deliversSecrets: Bool

    public init(store: any KeyValueStore, logger: Logger, secrets: SecretKeyring? = nil, deliversSecrets: Bool = false) {
        self.store = store
        self.logger = logger
        self.secrets = secrets
        self.deliversSecrets = deliversSecrets
    }

    struct Record: Codable, Sendable {
        var spec: TemplateSpec
        var updatedAt: Date
        var onlyOn: [String]?
    }

    // MARK: Records

    /// - Parameter onlyOn: for a template with commands, its author's job run selectors (see `NodeBinding`).
    public func put(_ name: String, _ spec: TemplateSpec, onlyOn: [String]? = nil) async throws -> TemplateInfo {
        try Self.validate(name: name, spec: spec)
        let now = Date()
        let key = StoreLayout.template(name)
        let result = try await store.txn(
            TxnRequest(
                // No rollout holds the template (a plain put never overwrites gray).
                compares: [.absent(StoreLayout.templateRollout(name))],
                success: [.put(key: key, value: try RecordCoding.encoder.encode(Record(spec: spec, updatedAt: now, onlyOn: onlyOn)))],
                failure: [.range(RangeRequest(.key(StoreLayout.templateRollout(name))))]))
        if !result.succeeded, case .range(let held)? = result.results.first, let holder = held.kvs.first {
            throw CapstanError(
                .conflict,
                "template \(name) is under rollout \(String(decoding: holder.value, as: UTF8.self)): put it with --rollout, or promote or abort the rollout")
        }
        logger.info("template saved", metadata: ["template": "\(name)", "revision": "\(result.revision)"])
        return TemplateInfo(name: name, spec: spec, updatedAt: now, revision: result.revision, onlyOn: onlyOn)
    }

    public func list() async throws -> TemplateList {
        TemplateList(items: try await records().map { $0.info })
    }

    public func template(_ name: String) async throws -> TemplateInfo {
        guard let kv = try await store.get(StoreLayout.template(name)) else { throw Self.notFound(name) }
        let record = try RecordCoding.decoder.decode(Record.self, from: kv.value)
        return TemplateInfo(name: name, spec: record.spec, updatedAt: record.updatedAt, revision: kv.modRevision, onlyOn: record.onlyOn)
    }

    /// Removes the template and its reports; files already on nodes stay as they are.
    public func remove(_ name: String) async throws {
        let result = try await store.txn(
            TxnRequest(
                compares: [.absent(StoreLayout.templateRollout(name))],
                success: [.delete(.key(StoreLayout.template(name))), .delete(.prefix(StoreLayout.templateStatusPrefix(name)))],
                failure: [.range(RangeRequest(.key(StoreLayout.templateRollout(name))))]))
        if !result.succeeded, case .range(let held)? = result.results.first, let holder = held.kvs.first {
            throw CapstanError(
                .conflict, "template \(name) is under rollout \(String(decoding: holder.value, as: UTF8.self)): promote or abort the rollout first")
        }
        guard case .delete(let deleted) = result.results.first, deleted > 0 else { throw Self.notFound(name) }
    }

    /// Every template with its store revision.
    func records() async throws -> [(info: TemplateInfo, modRevision: Int64)] {
        try await store.range(RangeRequest(.prefix(StoreLayout.templates))).kvs.map { kv in
            let record = try RecordCoding.decoder.decode(Record.self, from: kv.value)
            let name = String(kv.key.dropFirst(StoreLayout.templates.count))
            return (
                TemplateInfo(name: name, spec: record.spec, updatedAt: record.updatedAt, revision: kv.modRevision, onlyOn: record.onlyOn),
                kv.modRevision
            )
        }
    }

    // MARK: Reports and status

    /// Reports waiting to be written, by status key, and the last one written per key.
    private let pendingReports = Mutex<(waiting: [String: TemplateReport], lastArrival: ContinuousClock.Instant)>(([:], .now))
    /// Wakes the report writer (`runReportWriter`); holds one wake-up at most.
    private let reportsArrived = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    private let writtenReports = Mutex<[String: TemplateReport]>([:])
    /// How long reports gather before they are written together: until none came for this long.
    static let reportBatchDelay: Duration = .milliseconds(50)
    /// The longest reports wait while more keep coming. A push to 10,000 nodes brings their
    /// reports back while it is still sending: they are written once the burst pauses, so that
    /// the store's writes do not take the cores the push's sets are going out on.
    static let reportBatchMaxDelay: Duration = .seconds(1)
    /// Operations per store transaction (etcd allows 128 by default).
    static let reportBatchSize = 100

    /// Keeps a node's report (only when it says something new). Reports are written in batches,
    /// so that a push to 10,000 nodes costs a hundred transactions, not 10,000.
    func record(_ report: TemplateReport, from node: String) {
        let key = StoreLayout.templateStatus(report.template, node: node)
        if let written = writtenReports.withLock({ $0[key] }), written.revision == report.revision, written.state == report.state,
            written.error == report.error
        {
            return
        }
        pendingReports.withLock { state in
            state.waiting[key] = report
            state.lastArrival = .now
        }
        reportsArrived.continuation.yield()
    }

    /// Writes the reports agents send, in batches, until the server shuts down gracefully (or the
    /// task is cancelled); then once more, for what came last. One writer, so an older report
    /// never lands after a newer one of the same key. A graceful shutdown ends the loop without
    /// cancelling it, so that the last write still reaches a store that honours cancellation (etcd).
    func runReportWriter() async {
        let arrivals = reportsArrived
        await withGracefulShutdownHandler {
            for await _ in arrivals.stream {
                await waitForReportsToPause()
                await flushReports()
            }
        } onGracefulShutdown: {
            arrivals.continuation.finish()
        }
        await flushReports()
    }

    /// Returns once no report came for `reportBatchDelay`, or `reportBatchMaxDelay` after the call.
    private func waitForReportsToPause() async {
        let deadline = ContinuousClock.now + Self.reportBatchMaxDelay
        var wait = Self.reportBatchDelay
        while true {
            try? await Task.sleep(for: wait)
            let quiet = pendingReports.withLock { $0.lastArrival } + Self.reportBatchDelay
            let now = ContinuousClock.now
            if now >= quiet || now >= deadline { return }
            wait = min(quiet, deadline) - now
        }
    }

    /// Writes what waits, then again while more came meanwhile.
    private func flushReports() async {
        while true {
            let batch = pendingReports.withLock { state -> [String: TemplateReport] in
                defer { state.waiting = [:] }
                return state.waiting
            }
            if batch.isEmpty { return }
            await writeReports(batch)
        }
    }

    private func writeReports(_ batch: [String: TemplateReport]) async {
        let entries = batch.sorted { $0.key < $1.key }
        var start = 0
        while start < entries.count {
            let chunk = Array(entries[start..<min(start + Self.reportBatchSize, entries.count)])
            start += Self.reportBatchSize
            do {
                try await write(chunk)
            } catch {
                logger.warning("could not record template reports", metadata: ["count": "\(chunk.count)", "error": "\(error)"])
            }
        }
    }

    /// Writes reports in one transaction, if every template they name still exists; reports on
    /// a template removed meanwhile are dropped (its reports went with it).
    private func write(_ chunk: [(key: String, value: TemplateReport)]) async throws {
        var chunk = chunk
        while !chunk.isEmpty {
            let templates = Set(chunk.map(\.value.template))
            let result = try await store.txn(
                TxnRequest(
                    compares: templates.sorted().map { Compare(key: StoreLayout.template($0), .version(0), .greater) },
                    success: try chunk.map { .put(key: $0.key, value: try RecordCoding.encoder.encode($0.value)) }))
            if result.succeeded {
                writtenReports.withLock { written in
                    for (key, report) in chunk { written[key] = report }
                }
                return
            }
            var existing: Set<String> = []
            for template in templates where try await store.get(StoreLayout.template(template)) != nil {
                existing.insert(template)
            }
            chunk = chunk.filter { existing.contains($0.value.template) }
        }
    }

    /// The rollout of `name` over the nodes its selector picks now.
    public func status(_ name: String, nodes registry: NodeRegistry) async throws -> TemplateStatus {
        let template = try await template(name)
        return try await status(of: template, among: try await registry.list(selector: try Selector(template.spec.selector)))
    }

    /// The state of `template` on the nodes of `nodes` it binds: a page that shows several
    /// templates lists the nodes once and passes every node.
    public func status(of template: TemplateInfo, among nodes: [NodeInfo]) async throws -> TemplateStatus {
        let name = template.name
        let selector = try Selector(template.spec.selector)
        let binding = NodeBinding(selector: template.spec.selector, onlyOn: template.onlyOn)
        // A template with secrets binds by server labels and names only (see TemplatePusher).
        let bySecrets = !(template.spec.secrets ?? []).isEmpty
        let bound = nodes.filter {
            selector.matches(labels: $0.labels, name: $0.name) && binding.matches(labels: bySecrets ? $0.serverLabels : $0.labels, name: $0.name)
        }
        let inputs = try await Inputs.read(for: [template], store: store)
        let revision = inputs.revision(of: template)
        var reports: [String: TemplateReport] = [:]
        for kv in try await store.range(RangeRequest(.prefix(StoreLayout.templateStatusPrefix(name)))).kvs {
            if let report = try? RecordCoding.decoder.decode(TemplateReport.self, from: kv.value) {
                reports[String(kv.key.dropFirst(StoreLayout.templateStatusPrefix(name).count))] = report
            }
        }
        let states = bound.map { TemplateStatus.Node(name: $0.name, report: reports[$0.name], current: revision) }
        return TemplateStatus(name: name, revision: revision, nodes: states)
    }

    /// The templates that bind `node`, each with the node's state (`name` is the template's).
    public func states(for node: NodeInfo) async throws -> [TemplateStatus.Node] {
        let bound = try await records().map(\.info).filter { template in
            let labels = (template.spec.secrets ?? []).isEmpty ? node.labels : node.serverLabels
            return NodeBinding(selector: template.spec.selector, onlyOn: template.onlyOn).matches(labels: labels, name: node.name)
        }
        let inputs = try await Inputs.read(for: bound, store: store)
        var states: [TemplateStatus.Node] = []
        for template in bound {
            let kv = try await store.get(StoreLayout.templateStatus(template.name, node: node.name))
            let report = kv.flatMap { try? RecordCoding.decoder.decode(TemplateReport.self, from: $0.value) }
            states.append(TemplateStatus.Node(name: template.name, report: report, current: inputs.revision(of: template)))
        }
        return states
    }

    // MARK: Assignments

    /// Every template ready to send, with its selector: the inputs are read once for all nodes.
    func prepared() async throws -> [(binding: NodeBinding, assignment: TemplateAssignment)] {
        let templates = try await records().map(\.info)
        var inputs = try await Inputs.read(for: templates, store: store)
        try await inputs.revealSecrets(for: templates, store: store, keyring: secrets, delivered: deliversSecrets)
        return templates.map { (NodeBinding(selector: $0.spec.selector, onlyOn: $0.onlyOn), inputs.assignment(for: $0)) }
    }

    /// A digest that changes whenever the assignments do.
    static func digest(_ assignments: [TemplateAssignment], labels: [String: String], checks: [CheckAssignment] = []) -> String {
        struct Digested: Encodable {
            var assignments: [TemplateAssignment]
            var labels: [String: String]
            var checks: [CheckAssignment]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let data = (try? encoder.encode(Digested(assignments: assignments, labels: labels, checks: checks))) ?? Data()
        return ConfigRecord.hex(SHA256.hash(data: data).prefix(16))
    }

    /// The configs templates read, read once for many nodes.
    struct Inputs {
        /// Current config records by key: content, format and store revision.
        var configs: [String: (content: Data, format: ConfigFormat, revision: Int64)] = [:]
        /// Keys under each data prefix, in key order.
        var prefixes: [String: [String]] = [:]
        /// Declared secrets' plaintext, or why a template cannot have it.
        var secretValues: [String: Result<String, SecretProblem>] = [:]
        /// Declared secrets' data keys, for those that are secrets.
        var secretDataKeys: [String: String] = [:]

        struct SecretProblem: Error {
            var message: String
        }

        /// Decrypts the secrets `templates` declare, when they may go to nodes.
        mutating func revealSecrets(for templates: [TemplateInfo], store: any KeyValueStore, keyring: SecretKeyring?, delivered: Bool) async throws {
            for key in Set(templates.flatMap { $0.spec.secrets ?? [] }) {
                guard delivered else {
                    secretValues[key] = .failure(SecretProblem(message: "secrets are sent to nodes only over mutual TLS, and this server speaks plain HTTP"))
                    continue
                }
                guard let config = configs[key] else {
                    secretValues[key] = .failure(SecretProblem(message: "secret \(key) does not exist"))
                    continue
                }
                guard let id = secretDataKeys[key], let configKey = try? ConfigKey(key) else {
                    secretValues[key] = .failure(SecretProblem(message: "\(key) is not a secret: write it with config put --secret"))
                    continue
                }
                do {
                    let plaintext = try await ConfigService.reveal(
                        config.content, dataKeyID: id, key: configKey, revision: config.revision, store: store, keyring: keyring)
                    secretValues[key] = .success(String(decoding: plaintext, as: UTF8.self))
                } catch let error as CapstanError {
                    secretValues[key] = .failure(SecretProblem(message: error.message))
                }
            }
        }

        static func read(for templates: [TemplateInfo], store: any KeyValueStore) async throws -> Inputs {
            var inputs = Inputs()
            for template in templates {
                for key in [template.spec.source] + template.spec.data + (template.spec.secrets ?? []) {
                    if key.hasSuffix("/") {
                        guard inputs.prefixes[key] == nil else { continue }
                        let kvs = try await store.range(RangeRequest(.prefix(StoreLayout.configs + key))).kvs
                        var keys: [String] = []
                        for kv in kvs {
                            let configKey = StoreLayout.configKey(fromStoreKey: kv.key)
                            if let record = try? ConfigRecord.decode(kv.value) {
                                inputs.configs[configKey] = (record.content, record.header.format, kv.modRevision)
                                if let id = record.header.dataKeyID { inputs.secretDataKeys[configKey] = id }
                                keys.append(configKey)
                            }
                        }
                        inputs.prefixes[key] = keys
                    } else if inputs.configs[key] == nil, let kv = try await store.get(StoreLayout.configs + key),
                        let record = try? ConfigRecord.decode(kv.value)
                    {
                        inputs.configs[key] = (record.content, record.header.format, kv.modRevision)
                        if let id = record.header.dataKeyID { inputs.secretDataKeys[key] = id }
                    }
                }
            }
            return inputs
        }

        /// The highest revision among the template and the inputs it reads now.
        func revision(of template: TemplateInfo) -> Int64 {
            var revision = template.revision
            for key in keys(of: template) {
                revision = max(revision, configs[key]?.revision ?? 0)
            }
            return revision
        }

        /// The config keys a template reads, source first.
        func keys(of template: TemplateInfo) -> [String] {
            var keys = [template.spec.source]
            for data in template.spec.data {
                keys += data.hasSuffix("/") ? prefixes[data] ?? [] : [data]
            }
            return keys + (template.spec.secrets ?? [])
        }

        func assignment(for template: TemplateInfo) -> TemplateAssignment {
            let revision = revision(of: template)
            func failed(_ problem: String) -> TemplateAssignment {
                TemplateAssignment(name: template.name, revision: revision, spec: template.spec, source: nil, data: nil, problem: problem)
            }
            guard let source = configs[template.spec.source] else {
                return failed("template source \(template.spec.source) does not exist")
            }
            if secretDataKeys[template.spec.source] != nil {
                return failed("template source \(template.spec.source) is a secret: secrets go in through {{secret \"NS/KEY\"}}")
            }
            guard var text = String(data: source.content, encoding: .utf8) else {
                return failed("template source \(template.spec.source) is not UTF-8 text")
            }
            var data = ConfigValue.object([:])
            // {{secret "NS/KEY"}} becomes a name of the context holding the value: the value is
            // never parsed as Mustache, whatever it contains.
            var revealed: [String: ConfigValue] = [:]
            for reference in Self.secretReferences(in: text) {
                guard template.spec.secrets?.contains(reference.key) == true else {
                    return failed("the source references secret \(reference.key), which the template does not declare (template put --secret \(reference.key))")
                }
                switch secretValues[reference.key] {
                case .success(let value)?:
                    let name = "s\(revealed.count)"
                    revealed[name] = .string(value)
                    text = text.replacingOccurrences(of: reference.text, with: "{{capstan_secrets.\(name)}}")
                case .failure(let problem)?:
                    return failed(problem.message)
                case nil:
                    return failed("secret \(reference.key) could not be read")
                }
            }
            for item in template.spec.data {
                let keys = item.hasSuffix("/") ? prefixes[item] ?? [] : [item]
                if !item.hasSuffix("/"), configs[item] == nil { return failed("data \(item) does not exist") }
                for key in keys {
                    guard let config = configs[key] else { continue }
                    // Secrets go in only through {{secret}}: under a prefix they are left out.
                    if secretDataKeys[key] != nil {
                        if item.hasSuffix("/") { continue }
                        return failed("data \(item) is a secret: secrets go in through {{secret \"NS/KEY\"}}")
                    }
                    let value: ConfigValue
                    do {
                        value = try config.format.parse(String(decoding: config.content, as: UTF8.self))
                    } catch {
                        return failed("data \(key) does not parse: \(error.description)")
                    }
                    guard case .object = value else {
                        return failed("data \(key) is not a mapping (its keys become the template's names)")
                    }
                    data = data.merging(value)
                }
            }
            if !revealed.isEmpty { data = data.merging(.object(["capstan_secrets": .object(revealed)])) }
            return TemplateAssignment(name: template.name, revision: revision, spec: template.spec, source: text, data: data, problem: nil)
        }

        /// `{{secret "NS/KEY"}}` tags (blanks allowed inside the braces), each with its exact text.
        static func secretReferences(in text: String) -> [(text: String, key: String)] {
            var found: [(String, String)] = []
            for match in text.matches(of: /\{\{\s*secret\s+"([^"{}]+)"\s*\}\}/) {
                let whole = String(match.output.0)
                if !found.contains(where: { $0.0 == whole }) { found.append((whole, String(match.output.1))) }
            }
            return found
        }
    }

    // MARK: Validation

    static func validate(name: String, spec: TemplateSpec) throws(CapstanError) {
        do { try NodeName.validate(name) } catch {
            throw CapstanError(.invalidArgument, error.message.replacingOccurrences(of: "node name", with: "template name"))
        }
        _ = try Selector(spec.selector)
        do { _ = try ConfigKey(spec.source) } catch {
            throw CapstanError(.invalidArgument, "--source: \(error.message)")
        }
        for item in spec.secrets ?? [] {
            do { _ = try ConfigKey(item) } catch {
                throw CapstanError(.invalidArgument, "--secret \(item): \(error.message)")
            }
        }
        for item in spec.data {
            do {
                if item.hasSuffix("/") { _ = try KeyPrefix(item) } else { _ = try ConfigKey(item) }
            } catch {
                throw CapstanError(.invalidArgument, "--data \(item): \(error.message)")
            }
        }
        try validateDestination(spec.dest)
        // Permission bits only: a rendered config file is never setuid, setgid or sticky.
        guard (0...0o777).contains(spec.mode) else {
            throw CapstanError(
                .invalidArgument, "mode \(String(spec.mode, radix: 8)) is not a config file's mode: permission bits only, 0 to 777 (octal)")
        }
        if let refusal = spec.worldWritableRefusal { throw CapstanError(.invalidArgument, refusal) }
        guard spec.splayMilliseconds >= 0, spec.splayMilliseconds <= 3_600_000 else {
            throw CapstanError(.invalidArgument, "splay must be between 0 and 1h")
        }
        for (flag, command) in [("--check", spec.check), ("--reload", spec.reload)] {
            if let command, command.trimmingCharacters(in: .whitespaces).isEmpty {
                throw CapstanError(.invalidArgument, "\(flag) is empty")
            }
        }
    }

    /// An absolute path with no `.` or `..` segments (the agent checks its own allowed directories).
    static func validateDestination(_ path: String) throws(CapstanError) {
        guard path.hasPrefix("/") else {
            throw CapstanError(.invalidArgument, "destination \(path.quoted) must be an absolute path")
        }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard !segments.contains(".."), !segments.contains("."), !path.hasSuffix("/") else {
            throw CapstanError(.invalidArgument, "destination \(path.quoted) must name a file without \".\" or \"..\" segments")
        }
        guard !path.contains("\0") else { throw CapstanError(.invalidArgument, "destination contains a NUL byte") }
    }

    static func notFound(_ name: String) -> CapstanError {
        CapstanError(.notFound, "template \(name.quoted) not found")
    }
}
