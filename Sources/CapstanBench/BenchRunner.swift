import AsyncHTTPClient
import Foundation

/// Runs every measurement on both servers, alternating between them, and assembles the report.
struct BenchRunner {
    let plan: BenchPlan
    let servers: BenchServers

    /// Concurrent writers of the preload.
    private static let preloadWriters = 16

    private var targets: [any BenchTarget] { [servers.capstan, servers.etcd] }

    func run() async throws -> BenchReport {
        let date = ISO8601DateFormatter().string(from: Date())
        let loadAverageBefore = ProcessCPU.loadAverage()
        for target in targets {
            progress("preloading \(plan.preloadedKeys) keys into \(target.name)")
            try await preload(target)
        }
        // Watch first, while both stores are small and nothing else has run: the target is about
        // an idle server.
        let watch = try await measureWatch()
        var throughput: [ThroughputComparison] = []
        for clients in plan.getClientCounts {
            throughput += try await compare(.get, clients: clients)
        }
        for clients in plan.clientCounts {
            throughput += try await compare(.put, clients: clients)
        }
        throughput.sort {
            ($0.operation == .put ? 0 : 1, $0.clients, $0.generator == .wrk ? 0 : 1)
                < ($1.operation == .put ? 0 : 1, $1.clients, $1.generator == .wrk ? 0 : 1)
        }
        return BenchReport(
            date: date, commandLine: plan.commandLine,
            machine: MachineInfo.current(dataDirectory: servers.directory),
            etcdVersion: EtcdVersion.read(executable: plan.etcdPath),
            loadAverageBefore: loadAverageBefore, loadAverageAfter: ProcessCPU.loadAverage(), settings: BenchReport.Settings(plan: plan),
            throughput: throughput, watch: watch, goals: GoalCheck.evaluate(throughput: throughput, watch: watch, engine: plan.engine))
    }

    /// The targets in the order of run `run`: who goes first alternates, so neither always
    /// measures on a disk the other just filled.
    private func order(ofRun run: Int) -> [any BenchTarget] {
        run.isMultiple(of: 2) ? targets : targets.reversed()
    }

    private func preload(_ target: some BenchTarget) async throws {
        let client = servers.client
        let keys = plan.preloadedKeys
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<Self.preloadWriters {
                group.addTask {
                    for index in stride(from: writer, to: keys, by: Self.preloadWriters) {
                        let response = try await client.execute(target.putRequest(key: "g/\(index).txt"), timeout: .seconds(30))
                        let body = try await response.body.collect(upTo: 1 << 20)
                        guard (200..<300).contains(response.status.code) else {
                            throw BenchError("\(target.name) refused a preload put: HTTP \(response.status.code) \(String(buffer: body))")
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    private func measureWatch() async throws -> WatchComparison {
        var results: [String: [WatchProbe.Result]] = [:]
        for run in 0..<plan.runs {
            for target in order(ofRun: run) {
                let probe = WatchProbe(
                    client: servers.client, target: target, events: plan.watchEvents, pause: plan.watchPause, round: run)
                let result = try await probe.run()
                let summary = LatencySummary(nanoseconds: result.sendToEvent)
                progress(
                    "watch  run \(run + 1)/\(plan.runs)  \(pad(target.name))  send→event p50 \(Format.milliseconds(summary.p50))"
                        + "  p99 \(Format.milliseconds(summary.p99))")
                results[target.name, default: []].append(result)
            }
        }
        return WatchComparison(
            eventsPerRun: plan.watchEvents, runs: plan.runs,
            capstan: .init(runs: results[servers.capstan.name] ?? []), etcd: .init(runs: results[servers.etcd.name] ?? []))
    }

    /// One comparison per generator; in each run, every generator measures both targets in turn.
    private func compare(_ operation: ThroughputComparison.Operation, clients: Int) async throws -> [ThroughputComparison] {
        var results: [ThroughputComparison.Generator: [String: [LoadGenerator.Result]]] = [:]
        for run in 0..<plan.runs {
            for generator in plan.generators {
                for target in order(ofRun: run) {
                    let result = try await measure(operation, on: target, clients: clients, run: run, generator: generator)
                    results[generator, default: [:]][target.name, default: []].append(result)
                }
            }
        }
        return plan.generators.map { generator in
            ThroughputComparison(
                operation: operation, clients: clients, generator: generator,
                capstan: .init(runs: results[generator]?[servers.capstan.name] ?? []),
                etcd: .init(runs: results[generator]?[servers.etcd.name] ?? []))
        }
    }

    private func measure(
        _ operation: ThroughputComparison.Operation, on target: some BenchTarget, clients: Int, run: Int,
        generator: ThroughputComparison.Generator
    ) async throws -> LoadGenerator.Result {
        // Tags keep every measurement's put keys apart: generator, clients, run, warm-up or not.
        let tag = "\(generator.rawValue)c\(clients)r\(run)"
        if plan.warmup > .zero {
            _ = try await generate(operation, on: target, clients: clients, duration: plan.warmup, tag: tag + "w", generator: generator)
        }
        let serverCPUBefore = servers.cpuSeconds(of: target)
        let etcdCPUBefore = servers.etcdCPUSeconds()
        var result = try await generate(operation, on: target, clients: clients, duration: plan.duration, tag: tag, generator: generator)
        if let before = serverCPUBefore, let after = servers.cpuSeconds(of: target) {
            result.serverCPUSeconds = after - before
        }
        if let before = etcdCPUBefore, let after = servers.etcdCPUSeconds() {
            result.etcdCPUSeconds = after - before
        }
        let latency = result.latencySummary
        progress(
            "\(operation.rawValue)  \(clients) clients  \(generator.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0))"
                + "run \(run + 1)/\(plan.runs)  \(pad(target.name))  "
                + "\(Format.perSecond(result.throughput))  p50 \(Format.milliseconds(latency.p50))  p99 \(Format.milliseconds(latency.p99))"
                + "  server CPU \(Format.microseconds(Self.perRequest(result.serverCPUSeconds, result)))/req"
                + (result.failed > 0 ? "  \(result.failed) failed, first: \(result.firstFailure ?? "")" : ""))
        guard result.succeeded > 0 else {
            throw BenchError("every \(operation.rawValue) to \(target.name) failed; first: \(result.firstFailure ?? "no request sent")")
        }
        return result
    }

    /// Sends the load of one measurement (or warm-up) with `generator`; its CPU time is in the result.
    private func generate(
        _ operation: ThroughputComparison.Operation, on target: some BenchTarget, clients: Int, duration: Duration, tag: String,
        generator: ThroughputComparison.Generator
    ) async throws -> LoadGenerator.Result {
        switch generator {
        case .swift:
            let generatorCPUBefore = ProcessCPU.seconds()
            var result = await LoadGenerator(client: servers.client).run(
                clients: clients, duration: duration, request: builder(operation, target, tag: tag))
            if let before = generatorCPUBefore, let after = ProcessCPU.seconds() {
                result.generatorCPUSeconds = after - before
            }
            return result
        case .wrk:
            let wrk = WrkGenerator(executable: TimedCommand.which(plan.wrkPath) ?? plan.wrkPath, directory: servers.directory)
            return try await wrk.run(
                baseURL: target.baseURL, script: target.wrkScript(operation, tag: tag, keys: plan.preloadedKeys),
                clients: clients, duration: duration, name: "wrk-\(target.name)-\(operation.rawValue)-\(tag)")
        }
    }

    /// Puts go to fresh keys, distinct per client and per measurement (`tag`); gets pick a random
    /// preloaded key.
    private func builder(
        _ operation: ThroughputComparison.Operation, _ target: some BenchTarget, tag: String
    ) -> LoadGenerator.RequestBuilder {
        switch operation {
        case .put:
            return { client, sequence, _ in target.putRequest(key: "p/\(tag)/\(client)-\(sequence).txt") }
        case .get:
            let keys = UInt64(plan.preloadedKeys)
            return { _, _, random in target.getRequest(key: "g/\(random % keys).txt") }
        }
    }

    /// Microseconds of `cpuSeconds` per successful request.
    static func perRequest(_ cpuSeconds: Double?, _ result: LoadGenerator.Result) -> Double? {
        guard let cpuSeconds, result.succeeded > 0 else { return nil }
        return cpuSeconds * 1e6 / Double(result.succeeded)
    }

    private func pad(_ name: String) -> String {
        name.padding(toLength: 8, withPad: " ", startingAt: 0)
    }

}
