import CapstanStore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real single-member etcd (Debian's `etcd-server`, `/usr/bin/etcd`) on free loopback ports,
/// with its data in a temporary directory. `scripts/test.sh` installs it when missing.
public final class EtcdProcess: Sendable {
    public static let path = ProcessInfo.processInfo.environment["CAPSTAN_ETCD"] ?? "/usr/bin/etcd"

    public let clientURL: String
    private let process: ChildProcess
    private let directory: TemporaryDirectory

    private init(clientURL: String, process: ChildProcess, directory: TemporaryDirectory) {
        self.clientURL = clientURL
        self.process = process
        self.directory = directory
    }

    /// Starts etcd and waits until it serves clients. A port taken between picking it and etcd
    /// binding it (tests start many servers at once) costs another try on other ports.
    public static func start() async throws -> EtcdProcess {
        try await retryingPortClashes { try await startOnce() }
    }

    /// Runs `body` again (up to 3 times in all) when it fails because a port was taken meanwhile.
    static func retryingPortClashes<T>(_ body: () async throws -> T) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await body()
            } catch let error as ProcessExited where attempt < 3 && error.errors.contains("address already in use") {
                attempt += 1
            }
        }
    }

    private static func startOnce() async throws -> EtcdProcess {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw ProcessExited(output: "", errors: "\(path) is missing: install etcd-server (scripts/test.sh does)")
        }
        let directory = try TemporaryDirectory(prefix: "capstan-etcd")
        let (clientPort, peerPort) = (try freePort(), try freePort())
        let clientURL = "http://127.0.0.1:\(clientPort)"
        let peerURL = "http://127.0.0.1:\(peerPort)"
        let process = try ChildProcess(
            path: path,
            arguments: arguments(
                name: "test", dataDirectory: directory.file("data"), clientURL: clientURL, peerURL: peerURL,
                initialCluster: "test=\(peerURL)"))
        do {
            try await waitUntilReady(process)
        } catch {
            await process.stop()
            directory.remove()
            throw error
        }
        return EtcdProcess(clientURL: clientURL, process: process, directory: directory)
    }

    public func stop() async {
        await process.stop()
        directory.remove()
    }

    /// The command line of one member on loopback.
    static func arguments(name: String, dataDirectory: String, clientURL: String, peerURL: String, initialCluster: String)
        -> [String]
    {
        [
            "--name", name, "--data-dir", dataDirectory,
            "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
            "--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
            "--initial-cluster", initialCluster,
        ]
    }

    static func waitUntilReady(_ process: ChildProcess) async throws {
        // etcd logs to standard error, unbuffered (its standard output is buffered in a pipe).
        _ = try await process.waitForLine(onStandardError: true) { $0.contains("ready to serve client requests") }
    }

    /// Runs `body` against a fresh etcd and stops it afterwards, whatever happens.
    public static func with<T: Sendable>(_ body: @Sendable (EtcdProcess) async throws -> T) async throws -> T {
        let etcd = try await start()
        do {
            let result = try await body(etcd)
            await etcd.stop()
            return result
        } catch {
            await etcd.stop()
            throw error
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
public func freePort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw POSIXError(.EBADF) }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
        }
    }
    guard bound else { throw POSIXError(.EADDRINUSE) }
    return Int(UInt16(bigEndian: address.sin_port))
}
