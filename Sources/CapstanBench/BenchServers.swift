import AsyncHTTPClient
import Foundation
import NIOCore

/// Capstan and etcd running as child processes, with their data in one temporary directory, and
/// the HTTP client that talks to both.
final class BenchServers {
    let directory: String
    let client: HTTPClient
    let capstan: CapstanTarget
    let etcd: EtcdTarget
    private let capstanPort: Int
    private let etcdPort: Int
    private var children: [ChildProcess] = []
    private var cleanup: InterruptCleanup?

    /// The process id of the server behind `target`.
    func pid(of target: some BenchTarget) throws -> Int32 {
        guard let child = children.first(where: { $0.name == target.name }) else { throw BenchError("\(target.name) is not running") }
        return child.pid
    }

    /// CPU seconds the etcd process has used so far.
    func etcdCPUSeconds() -> Double? {
        cpuSeconds(of: etcd)
    }

    /// CPU seconds the server behind `target` has used so far.
    func cpuSeconds(of target: some BenchTarget) -> Double? {
        children.first { $0.name == target.name }.flatMap { ProcessCPU.seconds(pid: $0.pid) }
    }

    /// How long a server may take to answer its health check after starting.
    static let startupDeadline: Duration = .seconds(60)

    private init(directory: String, client: HTTPClient, capstanPort: Int, etcdPort: Int, value: BenchValue) {
        self.directory = directory
        self.client = client
        self.capstanPort = capstanPort
        self.etcdPort = etcdPort
        capstan = CapstanTarget(baseURL: "http://127.0.0.1:\(capstanPort)", value: value)
        etcd = EtcdTarget(baseURL: "http://127.0.0.1:\(etcdPort)", value: value)
    }

    /// Starts both servers, runs `body`, then stops the servers and removes the directory, also
    /// when `body` throws.
    static func with<Result>(plan: BenchPlan, _ body: (BenchServers) async throws -> Result) async throws -> Result {
        let directory = URL(fileURLWithPath: plan.workDirectory)
            .appendingPathComponent("capstan-bench-\(UUID().uuidString.prefix(8).lowercased())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let cleanup = InterruptCleanup()
        cleanup.watch(directory: directory)
        var configuration = HTTPClient.Configuration()
        configuration.httpVersion = .http1Only
        configuration.connectionPool = .init(
            idleTimeout: .seconds(120), concurrentHTTP1ConnectionsPerHostSoftLimit: plan.maxClients + 4)
        configuration.timeout = .init(connect: .seconds(5))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let servers = BenchServers(
            directory: directory, client: client, capstanPort: try FreePort.find(), etcdPort: try FreePort.find(),
            value: BenchValue(size: plan.valueSize))
        servers.cleanup = cleanup
        do {
            try await servers.start(plan: plan, cleanup: cleanup)
            let result = try await body(servers)
            await servers.shutdown(cleanup: cleanup)
            return result
        } catch {
            await servers.shutdown(cleanup: cleanup)
            throw error
        }
    }

    private func start(plan: BenchPlan, cleanup: InterruptCleanup) async throws {
        let peerPort = try FreePort.find()
        let peerURL = "http://127.0.0.1:\(peerPort)"
        let clientURL = "http://127.0.0.1:\(etcdPort)"
        let etcdChild = try ChildProcess(
            name: etcd.name, executable: plan.etcdPath,
            arguments: [
                "--name", "bench", "--data-dir", directory + "/etcd",
                "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
                "--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
                "--initial-cluster", "bench=\(peerURL)", "--initial-cluster-state", "new",
                "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn",
            ],
            logPath: directory + "/etcd.log")
        children.append(etcdChild)
        cleanup.watch(processIdentifier: etcdChild.pid)
        try await waitUntilHealthy(etcd, process: etcdChild)
        // etcd first: Capstan on etcd needs it up to start.
        var arguments = ["serve", "--data-dir", directory + "/capstan", "--port", String(capstanPort)]
        if plan.engine == .etcd {
            arguments += ["--store", "etcd://127.0.0.1:\(etcdPort)", "--store-prefix", "/capstan-bench"]
        }
        let executable = try plan.serverExecutable ?? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let capstanChild = try ChildProcess(
            name: capstan.name, executable: executable, arguments: arguments, logPath: directory + "/capstan.log")
        children.append(capstanChild)
        cleanup.watch(processIdentifier: capstanChild.pid)
        try await waitUntilHealthy(capstan, process: capstanChild)
        try await capstan.prepare(client: client)
        try await etcd.prepare(client: client)
    }

    /// Starts another child process (an agent, say) with its output in `logPath`: stopped with
    /// the servers, and killed with them on interruption.
    func spawn(name: String, executable: String, arguments: [String], logPath: String) throws -> ChildProcess {
        let child = try ChildProcess(name: name, executable: executable, arguments: arguments, logPath: logPath)
        children.append(child)
        cleanup?.watch(processIdentifier: child.pid)
        return child
    }

    private func waitUntilHealthy(_ target: some BenchTarget, process: ChildProcess) async throws {
        let deadline = ContinuousClock.now + Self.startupDeadline
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                throw BenchError("\(target.name) exited while starting; its log ends with:\n\(process.logTail())")
            }
            if let response = try? await client.execute(target.healthRequest, timeout: .seconds(2)),
                (try? await response.body.collect(upTo: 1 << 16)) != nil, response.status.code == 200
            {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchError(
            "\(target.name) did not answer its health check within \(Self.startupDeadline); its log ends with:\n\(process.logTail())")
    }

    private func shutdown(cleanup: InterruptCleanup) async {
        try? await client.shutdown()
        // The last started first: agents before the server they talk to.
        for child in children.reversed() {
            await child.stop()
        }
        try? FileManager.default.removeItem(atPath: directory)
        cleanup.cancel()
    }
}
