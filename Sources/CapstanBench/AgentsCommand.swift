import ArgumentParser
import AsyncHTTPClient
import CapstanCore
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOWebSocket
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `CapstanBench agents`: how fast a config change reaches N agents through a template, against
/// N watchers on etcd's HTTP watch receiving one put, in the same run.
struct AgentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agents",
        abstract: "Measure template push to N simulated agents against N etcd watchers.",
        discussion: """
            Starts a release Capstan server and etcd as child processes, then N simulated agents in this \
            process, each with its own enrollment and WebSocket. A template binds all of them; each run \
            writes the config it reads and times, for every agent, from sending the write to receiving the \
            new revision (the agent acknowledges it with a report). The same N then watch a prefix on etcd \
            through its HTTP watch (/v3/watch), one connection each, and the time from sending one put to \
            each watcher's event is taken the same way. Also reports the server's memory per connected \
            agent and its CPU during the pushes.
            """)

    @OptionGroup var fleet: FleetOptions
    @Option(help: "Pushes (and etcd puts) measured per count; the report gives medians.") var runs: Int = 3

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
    }

    func run() async throws {
        FileLimit.raise()
        let counts = try fleet.counts
        // Room in the HTTP pool for every round's etcd watchers (one connection each, and a
        // closed round's may linger) and the enrollments: a watch queued behind the limit would
        // wait forever.
        let plan = fleet.plan(connections: counts.reduce(0, +) + 64)
        let commandLine = (["CapstanBench"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        let loadBefore = ProcessCPU.loadAverage()
        var results: [FleetResult] = []
        try await BenchServers.with(plan: plan) { servers in
            let machine = MachineInfo.current(dataDirectory: servers.directory)
            progress("machine: \(machine.cpu), \(machine.cores) cores")
            for (index, count) in counts.enumerated() {
                results.append(try await measure(count: count, round: index, servers: servers))
            }
            print(FleetResult.markdown(results, command: commandLine, machine: machine, loadBefore: loadBefore, loadAfter: ProcessCPU.loadAverage()))
        }
    }

    private func measure(count: Int, round: Int, servers: BenchServers) async throws -> FleetResult {
        let capstanPID = try servers.pid(of: servers.capstan)
        let rssBefore = ProcessMemory.residentBytes(pid: capstanPID)
        let fleet = try await servers.settledFleet(count: count, round: round)
        // The server's CPU with the fleet idle (heartbeats only), taken off each push's own.
        let idleStart = (at: ContinuousClock.now, cpu: ProcessCPU.seconds(pid: capstanPID))
        try await Task.sleep(for: .seconds(2))
        let idleRate = ProcessCPU.seconds(pid: capstanPID).flatMap { cpu in
            idleStart.cpu.map { (cpu - $0) / idleStart.at.duration(to: .now).seconds }
        }
        // One template that binds every agent, reading a config each run changes.
        let data = "bench/agents-\(round).yaml"
        _ = try await servers.putConfig("bench/agents-\(round).mustache", "generation {{generation}}\n")
        let first = try await servers.putConfig(data, "generation: 0\n")
        try await servers.putTemplate(
            "agents-\(round)", selector: "fleet=\(fleet.label)", source: "bench/agents-\(round).mustache", data: data)
        progress("\(count) agents: waiting for the first push")
        _ = try await fleet.waitForAll(revision: first, timeout: .seconds(300))
        let rssAfter = ProcessMemory.residentBytes(pid: capstanPID)
        var pushes: [LatencySummary] = []
        var cpuPerPush: [Double] = []
        var fullCPUPerPush: [Double] = []
        var agentsCPUPerPush: [Double] = []
        try await Task.sleep(for: .seconds(1))
        for run in 1...runs {
            let cpuBefore = ProcessCPU.seconds(pid: capstanPID)
            let agentsBefore = ProcessCPU.seconds()
            let sent = ContinuousClock.now
            let revision = try await servers.putConfig(data, "generation: \(run)\n")
            let arrivals = try await fleet.waitForAll(revision: revision, timeout: .seconds(120))
            let cpuAfter = ProcessCPU.seconds(pid: capstanPID)
            let agentsAfter = ProcessCPU.seconds()
            let summary = LatencySummary(nanoseconds: arrivals.map { sent.duration(to: $0).nanoseconds })
            pushes.append(summary)
            if let cpuBefore, let cpuAfter { cpuPerPush.append(cpuAfter - cpuBefore) }
            if let agentsBefore, let agentsAfter { agentsCPUPerPush.append(agentsAfter - agentsBefore) }
            // A second later: the push's work that came after its last set (reports written),
            // less what the idle fleet costs over the same time.
            try await Task.sleep(for: .seconds(1))
            if let cpuBefore, let idleRate, let cpuSettled = ProcessCPU.seconds(pid: capstanPID) {
                fullCPUPerPush.append(cpuSettled - cpuBefore - idleRate * sent.duration(to: .now).seconds)
            }
            progress(
                "\(count) agents: push \(run)/\(runs)  p50 \(Format.milliseconds(summary.p50))  p99 \(Format.milliseconds(summary.p99))"
                    + "  max \(Format.milliseconds(summary.max))")
        }
        await fleet.stop()
        progress("\(count) etcd watchers: opening")
        let watchers = EtcdFleet(client: servers.client, target: servers.etcd, round: round)
        try await watchers.open(count)
        var etcdPuts: [LatencySummary] = []
        var watchersCPUPerPut: [Double] = []
        for run in 1...runs {
            try await Task.sleep(for: .seconds(1))
            let watchersBefore = ProcessCPU.seconds()
            let sent = ContinuousClock.now
            try await watchers.put(run: run)
            let arrivals = try await watchers.waitForAll(events: run, timeout: .seconds(120))
            if let watchersBefore, let watchersAfter = ProcessCPU.seconds() { watchersCPUPerPut.append(watchersAfter - watchersBefore) }
            let summary = LatencySummary(nanoseconds: arrivals.map { sent.duration(to: $0).nanoseconds })
            etcdPuts.append(summary)
            progress(
                "\(count) etcd watchers: put \(run)/\(runs)  p50 \(Format.milliseconds(summary.p50))  p99 \(Format.milliseconds(summary.p99))"
                    + "  max \(Format.milliseconds(summary.max))")
        }
        await watchers.stop()
        return FleetResult(
            count: count, capstan: pushes, etcd: etcdPuts,
            bytesPerAgent: rssBefore.flatMap { before in rssAfter.map { Double($0 - before) / Double(count) } },
            serverCPUPerPush: cpuPerPush.isEmpty ? nil : Median.of(cpuPerPush),
            serverFullCPUPerPush: fullCPUPerPush.isEmpty ? nil : Median.of(fullCPUPerPush),
            agentsCPUPerPush: agentsCPUPerPush.isEmpty ? nil : Median.of(agentsCPUPerPush),
            watchersCPUPerPut: watchersCPUPerPut.isEmpty ? nil : Median.of(watchersCPUPerPut))
    }

}

/// N simulated agents: each enrolls, holds its own WebSocket, says hello, sends heartbeats at
/// the interval the server asks, acknowledges every template set with a report, and answers
/// every job with a succeeded result at once (it runs nothing).
final class SimulatedFleet: Sendable {
    let baseURL: String
    let client: HTTPClient
    let round: Int
    private let identities = Mutex<[(name: String, secret: String)]>([])
    private let connections = LoopConnections()
    private let tracker = ArrivalTracker()

    init(baseURL: String, client: HTTPClient, round: Int) {
        self.baseURL = baseURL
        self.client = client
        self.round = round
    }

    static let joinToken = ServeCommand.benchJoinToken

    /// The label value of this round's agents: its template binds them and no other round's.
    var label: String { "r\(round)" }

    func enroll(_ count: Int) async throws {
        let facts = NodeFacts(
            hostname: "sim", os: "bench", kernel: "0", arch: "x86_64", cpuCount: 1, memoryBytes: 1 << 30, addresses: [],
            agentVersion: CapstanVersion.current, bootTime: nil)
        var found: [(String, String)] = []
        try await withThrowingTaskGroup(of: (String, String).self) { group in
            var next = 0
            func add() {
                let name = "sim-\(round)-\(next)"
                next += 1
                group.addTask {
                    var request = HTTPClientRequest.capstan(self.baseURL + "/v1/agent/enroll")
                    request.method = .POST
                    let body = EnrollRequest(joinToken: Self.joinToken, name: name, labels: ["fleet": self.label], facts: facts)
                    request.body = .bytes(ByteBuffer(data: try JSONEncoder.benchISO.encode(body)))
                    let response = try await self.client.execute(request, timeout: .seconds(120))
                    let bytes = try await response.body.collect(upTo: 1 << 20)
                    guard response.status.code == 201 else {
                        throw BenchError("enrolling \(name) failed: \(response.status) \(String(buffer: bytes))")
                    }
                    let answer = try JSONDecoder().decode(EnrollResponse.self, from: Data(buffer: bytes))
                    return (answer.name, answer.secret)
                }
            }
            for _ in 0..<min(64, count) { add() }
            while let identity = try await group.next() {
                found.append(identity)
                if next < count { add() }
            }
        }
        identities.withLock { $0 = found }
        tracker.reset(count: count)
    }

    /// Opens every agent's connection; returns once all were welcomed.
    func connect() async throws {
        let all = identities.withLock { $0 }
        guard let url = URL(string: baseURL), let host = url.host, let port = url.port else { throw BenchError("bad server URL \(baseURL)") }
        let welcomed = ArrivalTracker()
        welcomed.reset(count: all.count)
        welcomed.target(1)
        let fleet = SimulatedAgentHandler.Fleet(label: label, welcomed: welcomed, arrivals: tracker, reports: ReportCache())
        for (index, identity) in all.enumerated() {
            let head = HTTPRequestHead(
                version: .http1_1, method: .GET, uri: "/v1/agent/connect",
                headers: ["Host": "\(host):\(port)", "X-Capstan-Node": identity.name, "Authorization": "Bearer \(identity.secret)"])
            // Like a real agent, a simulated one connects again when its connection fails (a
            // connect refused or timed out under the load of opening thousands).
            connections.open(host: host, port: port, backoff: { .milliseconds(Int64.random(in: 0...Int64(min(5_000, 250 << min($0, 5))))) }) {
                $0.channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let upgrader = NIOWebSocketClientUpgrader(maxFrameSize: 1 << 22) { channel, _ in
                            channel.eventLoop.makeCompletedFuture {
                                let pipeline = channel.pipeline.syncOperations
                                pipeline.removeHandler(context: try pipeline.context(handlerType: HTTPRequestOnActive.self), promise: nil)
                                try pipeline.addHandler(SimulatedAgentHandler(index: index, fleet: fleet))
                            }
                        }
                        let pipeline = channel.pipeline.syncOperations
                        try pipeline.addHTTPClientHandlers(withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
                        try pipeline.addHandler(HTTPRequestOnActive(head: head))
                    }
                }
            }
            // Open connections in waves, as a fleet coming up would, not all in one instant.
            if index % 200 == 199 { try await Task.sleep(for: .milliseconds(20)) }
        }
        _ = try await welcomed.wait(timeout: .seconds(300))
    }

    /// Waits until every agent (or every one of `among`, by index) has received a set at
    /// `revision` or later; answers when each did.
    func waitForAll(revision: Int64, among: Set<Int>? = nil, timeout: Duration) async throws -> [ContinuousClock.Instant] {
        tracker.target(revision, among: among)
        return try await tracker.wait(timeout: timeout)
    }

    /// The indices of the agents whose last set was at `revision` or later.
    func holders(of revision: Int64) -> Set<Int> {
        tracker.holders(of: revision)
    }

    /// The indices of the agents named (the index each has in `waitForAll`).
    func indices(of names: Set<String>) -> Set<Int> {
        identities.withLock { all in Set(all.indices.filter { names.contains(all[$0].name) }) }
    }

    func stop() async {
        await connections.stop()
    }
}

/// What a simulated agent reads of a message: the template names and revisions of a set. It
/// picks the `"name":"…"` and `"revision":N` fields out of the text instead of decoding the
/// JSON, so that the simulator, which shares the cores with the server, does about as little
/// per message as the etcd watchers below (a substring search). The benchmark's templates and
/// data use neither key elsewhere; a set whose fields do not pair up is decoded in full.
enum TemplatesScan {
    static func assignments(in text: String) -> [(name: String, revision: Int64)]? {
        guard text.containsBytes(of: #""type":"templates""#) else { return nil }
        var text = text
        let scanned = text.withUTF8 { bytes -> [(name: String, revision: Int64)]? in
            let names = values(after: Array(#""name":""#.utf8), in: bytes) { bytes, start in
                var end = start
                while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\") { end += 1 }
                return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
            }
            let revisions = values(after: Array(#""revision":"#.utf8), in: bytes) { bytes, start in
                var revision: Int64 = 0
                var index = start
                while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                    revision = revision * 10 + Int64(bytes[index] - UInt8(ascii: "0"))
                    index += 1
                }
                return revision
            }
            guard !names.isEmpty, names.count == revisions.count else { return nil }
            return Array(zip(names, revisions))
        }
        if let scanned { return scanned }
        guard let set = (try? AgentMessage.decode(text))?.templates else { return nil }
        return set.assignments.map { ($0.name, $0.revision) }
    }

    /// Each value that follows `key` in `bytes`, read by `read` from the position after the key.
    private static func values<Value>(
        after key: [UInt8], in bytes: UnsafeBufferPointer<UInt8>, read: (UnsafeBufferPointer<UInt8>, Int) -> Value
    ) -> [Value] {
        var found: [Value] = []
        var index = 0
        while index + key.count <= bytes.count {
            if bytes[index] == key[0], bytes[index..<index + key.count].elementsEqual(key) {
                found.append(read(bytes, index + key.count))
                index += key.count
            } else {
                index += 1
            }
        }
        return found
    }
}

/// Encoded `report` messages (template applied), one per template and revision, shared by the
/// simulated agents.
final class ReportCache: Sendable {
    private let encoded = Mutex<[String: String]>([:])

    func report(template: String, revision: Int64) throws -> String {
        let key = "\(template)@\(revision)"
        if let text = encoded.withLock({ $0[key] }) { return text }
        let report = TemplateReport(template: template, revision: revision, state: .applied, error: nil, time: Date())
        let text = try AgentMessage.encode(AgentMessage(type: .report, report: report))
        encoded.withLock { $0[key] = text }
        return text
    }
}

/// N watchers on etcd's HTTP watch, one connection each, on one prefix.
final class EtcdFleet: Sendable {
    let client: HTTPClient
    let target: EtcdTarget
    let round: Int
    private let connections = LoopConnections()
    private let tracker = ArrivalTracker()

    init(client: HTTPClient, target: EtcdTarget, round: Int) {
        self.client = client
        self.target = target
        self.round = round
    }

    var prefix: String { "fleet/\(round)/" }

    func open(_ count: Int) async throws {
        tracker.reset(count: count)
        let created = ArrivalTracker()
        created.reset(count: count)
        created.target(1)
        guard let url = URL(string: target.baseURL), let host = url.host, let port = url.port else {
            throw BenchError("bad etcd URL \(target.baseURL)")
        }
        let body = ByteBuffer(string: EtcdTarget.watchBody(prefix: prefix))
        let fleet = EtcdWatchHandler.Fleet(
            request: HTTPRequestHead(
                version: .http1_1, method: .POST, uri: "/v3/watch",
                headers: ["Host": "\(host):\(port)", "Content-Type": "application/json", "Content-Length": "\(body.readableBytes)"]),
            body: body, created: created, arrivals: tracker)
        for index in 0..<count {
            // A watch that fails before etcd confirms it (a connection refused or dropped under
            // the load of opening thousands) is opened again; one that was confirmed is not (it
            // would miss events).
            let confirmation = EtcdWatchHandler.Confirmation()
            connections.open(
                host: host, port: port, backoff: { $0 < 20 ? .milliseconds(Int64(100 * min($0, 10))) : nil },
                reopen: { !confirmation.isConfirmed }
            ) {
                $0.channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(EtcdWatchHandler(index: index, fleet: fleet, confirmation: confirmation))
                    }
                }
            }
            if index % 200 == 199 { try await Task.sleep(for: .milliseconds(20)) }
        }
        _ = try await created.wait(timeout: .seconds(300))
    }

    func put(run: Int) async throws {
        let response = try await client.execute(target.putRequest(key: prefix + "k\(run)"), timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 1 << 20)
        guard response.status.code == 200 else { throw BenchError("etcd put failed: \(response.status)") }
    }

    /// Waits until every watcher has received `events` events; answers when each got the last.
    func waitForAll(events: Int, timeout: Duration) async throws -> [ContinuousClock.Instant] {
        tracker.target(Int64(events))
        return try await tracker.wait(timeout: timeout)
    }

    func stop() async {
        await connections.stop()
    }
}

/// When each of N participants first reached a target revision. A participant may get there
/// before the target is known (an event can beat the acknowledgement of the write that caused
/// it), so each keeps the times of its recent increases.
final class ArrivalTracker: Sendable {
    private struct State {
        var count = 0
        var target: Int64 = .max
        /// Per participant: (revision, when it first had it), oldest first, the last few.
        var increases: [[(revision: Int64, at: ContinuousClock.Instant)]] = []
        var arrived: [ContinuousClock.Instant?] = []
        /// The participants waited for (nil: all of them).
        var among: Set<Int>?
        var reached = 0
        var waiter: CheckedContinuation<[ContinuousClock.Instant], any Error>?

        /// How many participants the target waits for.
        var waited: Int { among?.count ?? count }
    }

    private let state = Mutex(State())

    func reset(count: Int) {
        state.withLock { state in
            state = State()
            state.count = count
            state.increases = Array(repeating: [], count: count)
            state.arrived = Array(repeating: nil, count: count)
        }
    }

    /// Sets the revision to wait for, by the participants `among` (nil: all); participants
    /// already there count with the time they got there.
    func target(_ revision: Int64, among: Set<Int>? = nil) {
        state.withLock { state in
            state.target = revision
            state.among = among
            state.reached = 0
            for index in 0..<state.count {
                state.arrived[index] = nil
                guard among?.contains(index) ?? true else { continue }
                state.arrived[index] = state.increases[index].first { $0.revision >= revision }?.at
                if state.arrived[index] != nil { state.reached += 1 }
            }
        }
    }

    /// The participants that have had `revision` or a later one.
    func holders(of revision: Int64) -> Set<Int> {
        state.withLock { state in
            Set(state.increases.indices.filter { (state.increases[$0].last?.revision ?? 0) >= revision })
        }
    }

    func seen(_ index: Int, revision: Int64, at instant: ContinuousClock.Instant) {
        let done = state.withLock { state -> (CheckedContinuation<[ContinuousClock.Instant], any Error>, [ContinuousClock.Instant])? in
            guard state.count > index else { return nil }
            let previous = state.increases[index].last?.revision ?? 0
            guard revision > previous else { return nil }
            state.increases[index].append((revision, instant))
            if state.increases[index].count > 8 { state.increases[index].removeFirst() }
            guard state.arrived[index] == nil, revision >= state.target, state.among?.contains(index) ?? true else { return nil }
            state.arrived[index] = instant
            state.reached += 1
            guard state.reached == state.waited, let waiter = state.waiter else { return nil }
            state.waiter = nil
            return (waiter, state.arrived.compactMap { $0 })
        }
        if let (waiter, arrivals) = done { waiter.resume(returning: arrivals) }
    }

    func wait(timeout: Duration) async throws -> [ContinuousClock.Instant] {
        let timer = Task {
            try await Task.sleep(for: timeout)
            let waiter = state.withLock { state -> (CheckedContinuation<[ContinuousClock.Instant], any Error>, Int, Int)? in
                guard let waiter = state.waiter else { return nil }
                state.waiter = nil
                return (waiter, state.reached, state.waited)
            }
            if let (waiter, reached, count) = waiter {
                waiter.resume(throwing: BenchError("only \(reached) of \(count) arrived within \(timeout)"))
            }
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> [ContinuousClock.Instant]? in
                if state.reached == state.waited { return state.arrived.compactMap { $0 } }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// One agent count's figures.
struct FleetResult: Sendable {
    var count: Int
    /// Per push: latency from sending the write to each agent having the new revision.
    var capstan: [LatencySummary]
    /// Per put: latency from sending it to each etcd watcher having the event.
    var etcd: [LatencySummary]
    var bytesPerAgent: Double?
    /// The server's CPU from the write to the last agent having the set.
    var serverCPUPerPush: Double?
    /// The server's CPU from the write to a second after the last agent had the set, less the
    /// idle fleet's over the same time: the push with all its reports.
    var serverFullCPUPerPush: Double?
    /// This process's CPU (the simulated agents) from the write to the last agent having the set.
    var agentsCPUPerPush: Double?
    /// This process's CPU (the etcd watchers) from the put to the last watcher having the event.
    var watchersCPUPerPut: Double?

    static func markdown(_ results: [FleetResult], command: String, machine: MachineInfo, loadBefore: String, loadAfter: String) -> String {
        var lines = [
            "## Template push to N agents vs N etcd watchers, \(ISO8601DateFormatter().string(from: Date()))", "",
            "- Command: `\(command)`",
            "- CPU: \(machine.cpu), \(machine.cores) cores; memory \(machine.memoryGiB) GiB",
            "- Kernel: \(machine.kernel); OS: \(machine.operatingSystem)",
            "- Load average (1, 5, 15 min) before the run: \(loadBefore); after: \(loadAfter)", "",
            "| Agents / watchers | System | p50 | p99 | max | runs (max) | Server memory per agent | Server CPU per push | "
                + "Server CPU per push, all its work | Agents' (watchers') CPU per push |",
            "|---:|---|---:|---:|---:|---|---:|---:|---:|---:|",
        ]
        for result in results {
            func median(_ runs: [LatencySummary], _ value: (LatencySummary) -> Double) -> String {
                Format.milliseconds(Median.of(runs.map(value)))
            }
            let capstanMax = result.capstan.map { Format.milliseconds($0.max) }.joined(separator: ", ")
            let etcdMax = result.etcd.map { Format.milliseconds($0.max) }.joined(separator: ", ")
            let memory = result.bytesPerAgent.map { String(format: "%.1f KiB", $0 / 1024) } ?? "-"
            func cpu(_ seconds: Double?) -> String { seconds.map { String(format: "%.0f ms", $0 * 1000) } ?? "-" }
            lines.append(
                "| \(result.count) | Capstan (template push) | \(median(result.capstan, \.p50)) | \(median(result.capstan, \.p99)) | "
                    + "\(median(result.capstan, \.max)) | \(capstanMax) | \(memory) | \(cpu(result.serverCPUPerPush)) | "
                    + "\(cpu(result.serverFullCPUPerPush)) | \(cpu(result.agentsCPUPerPush)) |")
            lines.append(
                "| \(result.count) | etcd (HTTP watch, one put) | \(median(result.etcd, \.p50)) | \(median(result.etcd, \.p99)) | "
                    + "\(median(result.etcd, \.max)) | \(etcdMax) | - | - | - | \(cpu(result.watchersCPUPerPut)) |")
        }
        return lines.joined(separator: "\n")
    }
}

/// Resident memory of a process, from /proc.
enum ProcessMemory {
    static func residentBytes(pid: Int32) -> Int64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let digits = line.split(separator: " ").dropFirst().first.flatMap { Int64($0) }
            return digits.map { $0 * 1024 }
        }
        return nil
    }
}

/// Lets this process and the servers it starts hold many connections.
enum FileLimit {
    static func raise() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}

extension JSONEncoder {
    static var benchISO: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }
}
