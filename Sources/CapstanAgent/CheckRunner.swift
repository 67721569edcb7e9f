import AsyncHTTPClient
import CapstanCore
import Foundation
import Logging
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// Runs the health checks the server assigns to this node, each on its own interval, and
/// reports every change of status (and all of them again after a reconnect).
actor CheckRunner {
    private let http: HTTPClient
    private let policy: ExecPolicy
    private let logger: Logger
    private var running: [String: (spec: CheckSpec, task: Task<Void, Never>)] = [:]
    private var statuses: [String: CheckResult] = [:]
    private var sink: (@Sendable (CheckResult) async -> Void)?

    init(http: HTTPClient, policy: ExecPolicy, logger: Logger) {
        self.http = http
        self.policy = policy
        self.logger = logger
    }

    /// Where reports go (the current connection); sends every status known.
    func connected(sink: @escaping @Sendable (CheckResult) async -> Void) async {
        self.sink = sink
        for result in statuses.values.sorted(by: { $0.check < $1.check }) { await sink(result) }
    }

    /// Runs exactly these checks from now on: new ones start, changed ones start over, removed
    /// ones stop.
    func update(_ checks: [CheckAssignment]) {
        let wanted = Dictionary(checks.map { ($0.name, $0.spec) }, uniquingKeysWith: { _, last in last })
        for (name, entry) in running where wanted[name] != entry.spec {
            entry.task.cancel()
            running.removeValue(forKey: name)
            statuses.removeValue(forKey: name)
        }
        for (name, spec) in wanted where running[name] == nil {
            running[name] = (spec, Task { await self.loop(name, spec) })
        }
    }

    func stopAll() {
        for entry in running.values { entry.task.cancel() }
        running = [:]
    }

    private func loop(_ name: String, _ spec: CheckSpec) async {
        // A command this agent may not run is critical at once, with the refusal as its output:
        // its health is unknown, and no number of runs would change that.
        if spec.kind == .command, let refusal = policy.refusal(ofCommandLine: spec.target, shell: spec.shell) {
            logger.warning("check refused", metadata: ["check": "\(name)", "reason": "\(refusal)"])
            await report(CheckResult(check: name, status: .critical, output: "refused: \(refusal)", time: Date()))
            return
        }
        var successes = 0
        var failures = 0
        var status = CheckStatus.pending
        while !Task.isCancelled {
            let (passed, output) = await Self.probe(spec, http: http, policy: policy)
            if Task.isCancelled { return }
            if passed {
                successes += 1
                failures = 0
            } else {
                failures += 1
                successes = 0
            }
            let next: CheckStatus =
                successes >= spec.successesBeforePassing ? .passing : failures >= spec.failuresBeforeCritical ? .critical : status
            if next != status {
                status = next
                await report(CheckResult(check: name, status: status, output: output, time: Date()))
            }
            try? await Task.sleep(for: .milliseconds(spec.intervalMilliseconds))
        }
    }

    private func report(_ result: CheckResult) async {
        guard running[result.check] != nil else { return }
        statuses[result.check] = result
        logger.info("check status", metadata: ["check": "\(result.check)", "status": "\(result.status.rawValue)"])
        await sink?(result)
    }

    /// One run of the check: whether it passed, and what it said.
    static func probe(_ spec: CheckSpec, http: HTTPClient, policy: ExecPolicy) async -> (Bool, String) {
        let timeout = Duration.milliseconds(spec.timeoutMilliseconds)
        switch spec.kind {
        case .http:
            do {
                let response = try await http.execute(HTTPClientRequest(url: spec.target), timeout: .milliseconds(spec.timeoutMilliseconds))
                _ = try? await response.body.collect(upTo: 64 * 1024)
                return ((200..<300).contains(Int(response.status.code)), "HTTP \(response.status.code)")
            } catch {
                return (false, "GET \(spec.target) failed: \(error)")
            }
        case .tcp:
            return await TCPProbe.connect(spec.target, timeout: timeout)
        case .command:
            let result = await CommandRunner.run(spec.target, shell: spec.shell, timeout: timeout, policy: policy)
            return (result.succeeded, result.summary)
        }
    }
}

/// A TCP connect with a timeout, on a thread of its own (a blocking connect honours the send
/// timeout on Linux).
enum TCPProbe {
    static func connect(_ target: String, timeout: Duration) async -> (Bool, String) {
        guard let colon = target.lastIndex(of: ":"), let port = UInt16(target[target.index(after: colon)...]) else {
            return (false, "\(target) is not HOST:PORT")
        }
        let host = String(target[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return await withCheckedContinuation { continuation in
            Thread {
                continuation.resume(returning: blockingConnect(host: host, port: port, timeout: timeout))
            }.start()
        }
    }

    private static func blockingConnect(host: String, port: UInt16, timeout: Duration) -> (Bool, String) {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &list)
        guard resolved == 0, let first = list else { return (false, "cannot resolve \(host): \(String(cString: gai_strerror(resolved)))") }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let address = entry {
            entry = address.pointee.ai_next
            let descriptor = socket(address.pointee.ai_family, address.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), address.pointee.ai_protocol)
            guard descriptor >= 0 else { continue }
            defer { close(descriptor) }
            let (seconds, attoseconds) = timeout.components
            var limit = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
            setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            if Glibc.connect(descriptor, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0 {
                return (true, "connected to \(host):\(port)")
            }
            lastError = errno == EINPROGRESS || errno == EAGAIN ? "timed out after \(timeout)" : String(cString: strerror(errno))
        }
        return (false, "connect to \(host):\(port) failed: \(lastError)")
    }
}
