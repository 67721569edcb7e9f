import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization

/// A real three-member (or any size) etcd cluster on loopback, whose members the failure tests
/// kill and bring back.
public final class EtcdCluster: Sendable {
    public struct Member: Sendable {
        public let name: String
        public let clientURL: String
        let peerURL: String
    }

    public let members: [Member]
    private let directory: TemporaryDirectory
    private let initialCluster: String
    private let running: Mutex<[String: ChildProcess]> = Mutex([:])

    private init(members: [Member], directory: TemporaryDirectory) {
        self.members = members
        self.directory = directory
        self.initialCluster = members.map { "\($0.name)=\($0.peerURL)" }.joined(separator: ",")
    }

    /// `etcd://HOST:PORT,...` naming every member, as `capstan server --store` takes it.
    public var storeURL: String {
        "etcd://" + members.map { $0.clientURL.replacingOccurrences(of: "http://", with: "") }.joined(separator: ",")
    }

    /// Starts every member and waits until each serves clients (on other ports again when one
    /// was taken meanwhile).
    public static func start(size: Int = 3) async throws -> EtcdCluster {
        try await EtcdProcess.retryingPortClashes { try await startOnce(size: size) }
    }

    private static func startOnce(size: Int) async throws -> EtcdCluster {
        let directory = try TemporaryDirectory(prefix: "capstan-etcd-cluster")
        var members: [Member] = []
        for index in 1...size {
            members.append(
                Member(name: "m\(index)", clientURL: "http://127.0.0.1:\(try freePort())", peerURL: "http://127.0.0.1:\(try freePort())"))
        }
        let cluster = EtcdCluster(members: members, directory: directory)
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for member in members {
                    group.addTask { try await cluster.start(member.name) }
                }
                try await group.waitForAll()
            }
        } catch {
            await cluster.stop()
            throw error
        }
        return cluster
    }

    /// Starts (or restarts, on its existing data) the member `name`; returns once it serves.
    public func start(_ name: String) async throws {
        let member = try self.member(name)
        var arguments = EtcdProcess.arguments(
            name: member.name, dataDirectory: directory.file(member.name), clientURL: member.clientURL,
            peerURL: member.peerURL, initialCluster: initialCluster)
        // Quick elections keep the failure tests short; loopback has no real latency.
        arguments += ["--heartbeat-interval", "50", "--election-timeout", "500"]
        let process = try ChildProcess(path: EtcdProcess.path, arguments: arguments)
        running.withLock { $0[name] = process }
        try await EtcdProcess.waitUntilReady(process)
    }

    /// Kills the member `name` with SIGKILL, as a crash would, and waits until it is gone.
    public func kill(_ name: String) async throws {
        guard let process = running.withLock({ $0.removeValue(forKey: name) }) else { return }
        process.signal(SIGKILL)
        // Dead is enough (its sockets are closed): a zombie not reaped yet counts. Waiting for
        // the reaper's notice was seen to hang while many children exited at once.
        try await eventually("etcd member \(name) to die") { process.isDead }
    }

    /// Freezes the member `name` (SIGSTOP): its connections stay open and it answers nothing,
    /// as a member cut off by the network would look.
    public func freeze(_ name: String) {
        running.withLock { $0[name] }?.signal(SIGSTOP)
    }

    /// Lets a frozen member run again (SIGCONT).
    public func thaw(_ name: String) {
        running.withLock { $0[name] }?.signal(SIGCONT)
    }

    /// The name of the current leader, as the running members report it.
    public func leader() async throws -> String {
        struct Status: Decodable {
            struct Header: Decodable { var member_id: String }
            var header: Header
            var leader: String
        }
        let live = running.withLock { Set($0.keys) }
        var ids: [String: String] = [:]
        var leaderID: String?
        for member in members where live.contains(member.name) {
            var request = HTTPClientRequest(url: member.clientURL + "/v3/maintenance/status")
            request.method = .POST
            request.body = .bytes(ByteBuffer(string: "{}"))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
            let status = try JSONDecoder().decode(Status.self, from: Data(buffer: try await response.body.collect(upTo: 1 << 20)))
            ids[status.header.member_id] = member.name
            leaderID = status.leader
        }
        guard let leaderID, let name = ids[leaderID] else { throw TimeoutError(what: "an etcd leader", timeout: .zero) }
        return name
    }

    public func stop() async {
        let processes = running.withLock { state in
            defer { state = [:] }
            return Array(state.values)
        }
        for process in processes {
            process.signal(SIGCONT)
            await process.stop()
        }
        directory.remove()
    }

    private func member(_ name: String) throws -> Member {
        guard let member = members.first(where: { $0.name == name }) else {
            throw ProcessExited(output: "", errors: "no etcd member \(name)")
        }
        return member
    }

    /// Runs `body` against a fresh cluster and stops it afterwards, whatever happens.
    public static func with<T: Sendable>(size: Int = 3, _ body: @Sendable (EtcdCluster) async throws -> T) async throws -> T {
        let cluster = try await start(size: size)
        do {
            let result = try await body(cluster)
            await cluster.stop()
            return result
        } catch {
            await cluster.stop()
            throw error
        }
    }
}
