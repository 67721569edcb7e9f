import Foundation
import Synchronization

/// The built `capstan` executable, run as a real child process.
public enum CapstanBinary {
    /// Path of the binary: `$CAPSTAN_BIN`, else beside the test bundle in the build directory.
    public static var path: String {
        if let path = ProcessInfo.processInfo.environment["CAPSTAN_BIN"], !path.isEmpty { return path }
        let directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        return directory.appendingPathComponent("capstan").path
    }

    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String

        public var stderrLines: [Substring] { stderr.split(separator: "\n") }

        public init(status: Int32, stdout: String, stderr: String) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
        }
    }

    /// Runs `capstan ARGUMENTS` to completion without blocking a concurrency thread.
    public static func run(
        _ arguments: [String],
        stdin: String? = nil,
        environment: [String: String] = [:],
        timeout: Duration = .seconds(60)
    ) async throws -> Result {
        let process = try ChildProcess(path: path, arguments: arguments, environment: environment)
        if let stdin { process.write(stdin) }
        process.closeInput()
        let status = try await withTimeout(timeout, "capstan \(arguments.joined(separator: " "))") {
            await process.exitStatus()
        }
        return Result(status: status, stdout: process.output, stderr: process.errorOutput)
    }
}

/// A child process with its standard streams captured, awaited without blocking threads of the
/// concurrency pool. Started by `Spawn`, not Foundation's `Process` (see there why).
///
/// Each stream is read by a plain thread of its own with blocking reads until end of file:
/// dispatch-based `readabilityHandler`s were seen to crash libdispatch's event loop when a pipe
/// closed under them.
public final class ChildProcess: Sendable {
    private struct State {
        var stdout = Data()
        var stderr = Data()
        var exitStatus: Int32?
        var openStreams = 2
        var exitWaiters: [CheckedContinuation<Int32, Never>] = []

        /// The status once the process exited and both streams reached end of file.
        var finished: Int32? { openStreams == 0 ? exitStatus : nil }
    }

    private final class Shared: Sendable {
        let state = Mutex(State())

        func update(_ change: (inout State) -> Void) {
            let (waiters, status) = state.withLock { state -> ([CheckedContinuation<Int32, Never>], Int32?) in
                change(&state)
                guard let status = state.finished else { return ([], nil) }
                defer { state.exitWaiters = [] }
                return (state.exitWaiters, status)
            }
            if let status {
                for waiter in waiters { waiter.resume(returning: status) }
            }
        }
    }

    private let started: Spawn.Started
    /// The parent's end of the child's standard input, until it is closed.
    private let input: Mutex<Int32?>
    private let shared = Shared()

    public init(path: String, arguments: [String], environment: [String: String] = [:]) throws {
        var merged = ProcessInfo.processInfo.environment
        merged["CAPSTAN_ADDR"] = nil
        // Servers bootstrap with the test root token and clients send it, unless a test says otherwise.
        for (name, value) in TestAuth.environment { merged[name] = value }
        for (name, value) in environment { merged[name] = value }
        let started = try Spawn.start(path: path, arguments: arguments, environment: merged)
        self.started = started
        self.input = Mutex(started.input)
        let shared = self.shared
        Thread {
            let status = Spawn.wait(started.pid)
            shared.update { $0.exitStatus = status }
        }.start()
        for (descriptor, isOutput) in [(started.output, true), (started.errors, false)] {
            Thread {
                // read(2) itself, retried on EINTR: the suite's many children make SIGCHLD
                // interrupt reads often. The pipe is closed at end of file, so that finished
                // children hold no descriptors.
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let count = read(descriptor, &buffer, buffer.count)
                    if count < 0, errno == EINTR { continue }
                    if count <= 0 { break }
                    let data = Data(buffer[0..<count])
                    shared.update { state in
                        if isOutput { state.stdout.append(data) } else { state.stderr.append(data) }
                    }
                }
                close(descriptor)
                shared.update { $0.openStreams -= 1 }
            }.start()
        }
    }

    /// A backstop: a child must not outlive the object that started it.
    deinit {
        if shared.state.withLock({ $0.exitStatus == nil }) { kill(started.pid, SIGKILL) }
        closeInput()
    }

    public var pid: Int32 { started.pid }
    public var output: String { shared.state.withLock { String(decoding: $0.stdout, as: UTF8.self) } }
    public var errorOutput: String { shared.state.withLock { String(decoding: $0.stderr, as: UTF8.self) } }
    public var hasExited: Bool { shared.state.withLock { $0.finished != nil } }

    /// Whether the process is gone or a zombie, whether or not its exit was noticed yet.
    public var isDead: Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        // The state follows the command name, which is in parentheses.
        guard let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state == "Z" || state == "X"
    }

    /// Writes to the child's standard input; nothing happens once it exited or the input closed.
    public func write(_ text: String) {
        input.withLock { descriptor in
            guard let descriptor else { return }
            var bytes = Array(text.utf8)[...]
            while !bytes.isEmpty {
                let count = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                if count <= 0 { return }
                bytes = bytes.dropFirst(count)
            }
        }
    }

    public func closeInput() {
        input.withLock { descriptor in
            if let open = descriptor { close(open) }
            descriptor = nil
        }
    }

    public func signal(_ signal: Int32) {
        // Not once it was reaped: the number may belong to another process by then.
        guard shared.state.withLock({ $0.exitStatus == nil }) else { return }
        kill(started.pid, signal)
    }

    /// Waits for the process to exit and its output to be read; answers its status.
    public func exitStatus() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status: Int32? = shared.state.withLock { state in
                if let status = state.finished { return status }
                state.exitWaiters.append(continuation)
                return nil
            }
            if let status { continuation.resume(returning: status) }
        }
    }

    /// Waits until standard output (or standard error) contains a line matching `predicate`;
    /// answers that line.
    public func waitForLine(
        timeout: Duration = .seconds(30), onStandardError: Bool = false, _ predicate: @escaping @Sendable (String) -> Bool
    ) async throws -> String {
        var found: String?
        try await eventually(timeout: timeout, "a matching line from the process; output so far: \(output) \(errorOutput)") {
            let text = onStandardError ? self.errorOutput : self.output
            // Whole lines only: a line still being written may match before its end arrives
            // (a join token cut after `--join-token `).
            let whole = text.hasSuffix("\n") ? Substring(text) : text[..<(text.lastIndex(of: "\n") ?? text.startIndex)]
            found = whole.split(separator: "\n").map(String.init).first(where: predicate)
            if found == nil, self.hasExited {
                throw ProcessExited(output: self.output, errors: self.errorOutput)
            }
            return found != nil
        }
        return found ?? ""
    }

    /// Stops the process if it is still running: SIGTERM, then SIGKILL after a grace period.
    public func stop(grace: Duration = .seconds(10)) async {
        guard !hasExited else { return }
        signal(SIGTERM)
        let exited = (try? await withTimeout(grace, "graceful exit") { await self.exitStatus() }) != nil
        if !exited {
            signal(SIGKILL)
            // Dead is enough; the reaper's notice may come later.
            try? await eventually(timeout: .seconds(10), "the process to die") { self.isDead }
        }
    }
}

public struct ProcessExited: Error, CustomStringConvertible {
    public var output: String
    public var errors: String
    public var description: String { "process exited early; stdout: \(output) stderr: \(errors)" }
}

/// A `capstan server` child process on a free loopback port.
public struct ServerProcess: Sendable {
    public let process: ChildProcess
    public let url: String

    /// Starts `capstan server --listen 127.0.0.1:0 EXTRA...` and waits until it listens. It
    /// serves plain HTTP unless `tls` (the TLS tests' own subject). Prefer `with`, which also stops it.
    public static func start(
        dataDirectory: String?, extraArguments: [String] = [], environment: [String: String] = [:], tls: Bool = false
    ) async throws -> ServerProcess {
        var arguments = ["server", "--listen", "127.0.0.1:0", "--log-level", "warning"]
        if !tls { arguments.append("--plain-http") }
        if let dataDirectory { arguments += ["--data-dir", dataDirectory] }
        var environment = environment
        // A server without a data directory is an etcd replica: every replica of one installation
        // seals with the same secret key, as an operator gives them one key file.
        if dataDirectory == nil, !extraArguments.contains("--dev"), !extraArguments.contains("--secret-key-file"),
            environment["CAPSTAN_SECRET_KEY"] == nil
        {
            environment["CAPSTAN_SECRET_KEY"] = TestAuth.secretKey
        }
        let process = try ChildProcess(path: CapstanBinary.path, arguments: arguments + extraArguments, environment: environment)
        do {
            let line = try await process.waitForLine { $0.contains("listening on http") }
            guard let range = line.range(of: #"https?://[0-9.:]+"#, options: .regularExpression) else {
                throw ProcessExited(output: line, errors: process.errorOutput)
            }
            return ServerProcess(process: process, url: String(line[range]))
        } catch {
            await process.stop()
            throw error
        }
    }

    /// Runs a server for the duration of `body` and stops it afterwards, whatever happens.
    public static func with<T: Sendable>(
        dataDirectory: String?,
        extraArguments: [String] = [],
        environment: [String: String] = [:],
        tls: Bool = false,
        _ body: (ServerProcess) async throws -> T
    ) async throws -> T {
        let server = try await start(dataDirectory: dataDirectory, extraArguments: extraArguments, environment: environment, tls: tls)
        do {
            let result = try await body(server)
            await server.process.stop()
            return result
        } catch {
            await server.process.stop()
            throw error
        }
    }
}

/// An error from a test body that ran against server processes, with each server's state and
/// the end of its log: a failure under load then says whether a server died and what it logged.
public struct FailureWithServerLogs: Error, CustomStringConvertible {
    public var error: any Error
    public var logs: [String]
    public var description: String { "\(error)\n" + logs.joined(separator: "\n") }
}

extension ServerProcess {
    /// Runs `body`; if it throws, rethrows the error with the servers' states and log tails.
    public static func explaining<T>(
        _ servers: [String: ServerProcess], _ body: () async throws -> T
    ) async throws -> T {
        do {
            return try await body()
        } catch {
            let logs = servers.sorted { $0.key < $1.key }.map { name, server in
                let state = server.process.isDead ? "dead" : "running"
                let log = server.process.errorOutput
                // A crash report's head (the reason and the crashed thread's frames) comes before
                // pages of other threads and registers: kept whole, beside the log's end.
                var crash = ""
                if let start = log.range(of: "Fatal error") ?? log.range(of: "*** Program crashed") {
                    crash = "crash report:\n" + String(log[start.lowerBound...].prefix(6000)) + "\n...\n"
                }
                return "--- \(name) (\(server.url), \(state)), \(crash)end of its log:\n" + String(log.suffix(4000))
            }
            throw FailureWithServerLogs(error: error, logs: logs)
        }
    }
}

extension ChildProcess {
    /// Runs `body` with this process and stops the process afterwards, whatever happens.
    public func stopping<T: Sendable>(after body: () async throws -> T) async throws -> T {
        do {
            let result = try await body()
            await stop()
            return result
        } catch {
            await stop()
            throw error
        }
    }
}

extension ChildProcess {
    /// Runs `command` through bash (in `directory`, when given) and answers how it ended.
    public static func runShell(
        _ command: String, environment: [String: String], directory: String? = nil
    ) async throws -> CapstanBinary.Result {
        let script = directory.map { "cd \($0) && \(command)" } ?? command
        let process = try ChildProcess(path: "/bin/bash", arguments: ["-c", script], environment: environment)
        process.closeInput()
        let status = try await withTimeout(.seconds(60), command) { await process.exitStatus() }
        return CapstanBinary.Result(status: status, stdout: process.output, stderr: process.errorOutput)
    }
}

/// A `capstan agent` child process.
public enum AgentProcess {
    /// Starts an agent and waits until it is connected (it prints `agent connected`); stops it
    /// again if it does not get there.
    public static func start(
        server: String, dataDirectory: String, name: String, joinToken: String?, labels: [String] = [],
        allowedPaths: [String] = [], extraArguments: [String] = []
    ) async throws -> ChildProcess {
        var arguments = ["agent", "--server", server, "--data-dir", dataDirectory, "--name", name, "--log-level", "warning"]
        if let joinToken { arguments += ["--join-token", joinToken] }
        for label in labels { arguments += ["--label", label] }
        for path in allowedPaths { arguments += ["--allow-path", path] }
        arguments += extraArguments
        let agent = try ChildProcess(path: CapstanBinary.path, arguments: arguments)
        do {
            _ = try await agent.waitForLine { $0 == "agent connected" }
        } catch {
            await agent.stop()
            throw error
        }
        return agent
    }
}
