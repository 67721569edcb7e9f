import EtcdAPI
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOCore
import Synchronization

/// etcd's v3 gRPC API, over one or more cluster members.
///
/// Each member has one HTTP/2 connection, which every call and stream to it shares. Calls go to
/// one member at a time. When it cannot be reached, or answers that it has no leader, the call
/// moves to the next member and retries until `failoverWindow` passes. A write is retried only
/// when it surely was not applied (it never left for the member, or the member refused it
/// before proposing it); otherwise its outcome is unknown and the caller gets an error saying so.
final class EtcdClient: Sendable {
    typealias Transport = HTTP2ClientTransport.Posix

    /// One cluster member and its connection.
    struct Member: Sendable {
        let endpoint: String
        let grpc: GRPCClient<Transport>
        var kv: Etcdserverpb_KV.Client<Transport> { .init(wrapping: grpc) }
        var watch: Etcdserverpb_Watch.Client<Transport> { .init(wrapping: grpc) }
        var lease: Etcdserverpb_Lease.Client<Transport> { .init(wrapping: grpc) }
    }

    let members: [Member]
    private let connections: Task<Void, Never>
    private let preferred = Mutex(0)
    private let logger: Logger
    private let failoverWindow: Duration
    /// How long a member may take to answer a call (or to start answering a stream).
    let requestTimeout: Duration

    /// - Parameter endpoints: `http://HOST:PORT` of each member.
    init(endpoints: [String], requestTimeout: Duration = .seconds(10), failoverWindow: Duration = .seconds(15), logger: Logger) throws {
        precondition(!endpoints.isEmpty, "etcd needs at least one endpoint")
        self.requestTimeout = requestTimeout
        self.failoverWindow = max(failoverWindow, requestTimeout * 2)
        self.logger = logger
        let members = try endpoints.map { endpoint in
            let (host, port) = try Self.hostAndPort(endpoint)
            let transport = try Transport(
                target: .dns(host: host, port: port),
                transportSecurity: .plaintext,
                config: .defaults { config in
                    config.connection.maxIdleTime = nil
                    config.connection.keepalive = .init(time: .seconds(30), timeout: .seconds(10), allowWithoutCalls: true)
                    config.backoff = .init(initial: .milliseconds(100), max: .seconds(2), multiplier: 1.6, jitter: 0.2)
                    config.channelDebuggingCallbacks.onCreateTCPConnection = { channel in
                        // Called on the channel's event loop, as it is set up.
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(PingResponder(), position: .first)
                        }
                    }
                })
            return Member(endpoint: endpoint, grpc: GRPCClient(transport: transport))
        }
        self.members = members
        self.connections = Task {
            await withDiscardingTaskGroup { group in
                for member in members {
                    group.addTask { try? await member.grpc.runConnections() }
                }
            }
        }
    }

    var endpoints: [String] { members.map(\.endpoint) }

    func shutdown() async {
        for member in members { member.grpc.beginGracefulShutdown() }
        // Open streams (the watch feed) would hold a graceful shutdown open: cut them.
        connections.cancel()
        await connections.value
    }

    /// The member calls go to now.
    var currentEndpoint: String {
        members[preferred.withLock { $0 } % members.count].endpoint
    }

    /// Options for a unary call: fail fast while a member is unreachable, and give up on one
    /// that does not answer within the request timeout.
    var unaryOptions: CallOptions {
        var options = CallOptions.defaults
        options.timeout = requestTimeout
        options.waitForReady = false
        options.maxResponseMessageBytes = 256 << 20
        return options
    }

    /// Options for a stream: no deadline (it lives as long as its reader).
    static var streamOptions: CallOptions {
        var options = CallOptions.defaults
        options.waitForReady = false
        options.maxResponseMessageBytes = 256 << 20
        return options
    }

    /// Calls a unary method with failover, e.g. `{ try await $0.kv.range(request, options: $1) }`.
    func call<Response: Sendable>(
        _ method: String, idempotent: Bool, _ body: @Sendable (Member, CallOptions) async throws -> Response
    ) async throws -> Response {
        let options = unaryOptions
        return try await withFailover(method, idempotent: idempotent) { member in
            do {
                return try await body(member, options)
            } catch let error as RPCError {
                throw Self.storeError(error, method: method, endpoint: member.endpoint, idempotent: idempotent)
            }
        }
    }

    /// Calls a unary method on one member, with no failover.
    func call<Response: Sendable>(
        _ method: String, on endpoint: String, _ body: @Sendable (Member, CallOptions) async throws -> Response
    ) async throws -> Response {
        guard let member = members.first(where: { $0.endpoint == endpoint }) else {
            throw StoreError(.invalidArgument, "\(endpoint) is not one of the etcd members")
        }
        do {
            return try await body(member, unaryOptions)
        } catch let error as RPCError {
            throw Self.storeError(error, method: method, endpoint: member.endpoint, idempotent: true)
        }
    }

    /// A watch that etcd has confirmed: the member it runs on, and the task that runs it.
    struct RunningWatch: Sendable {
        let endpoint: String
        let task: Task<Void, any Error>

        /// Waits until the watch ends, which it only does with an error (a closed stream is one);
        /// cancelling the waiting task cancels the watch.
        func wait() async throws {
            try await withTaskCancellationHandler {
                try await task.value
            } onCancel: {
                task.cancel()
            }
        }
    }

    /// Opens a watch with failover and calls `handle` with each of its answers, in order, as they
    /// arrive (on the task that reads the stream: no hand-over between tasks on the way). It
    /// returns once the member has confirmed the watch (its first answer), which must come within
    /// the request timeout: a member that accepts connections but does not answer (frozen, cut
    /// off) is passed over. An error `handle` throws ends the watch with that error.
    func watch(
        _ create: Etcdserverpb_WatchCreateRequest, handle: @escaping @Sendable (Etcdserverpb_WatchResponse) async throws -> Void
    ) async throws -> RunningWatch {
        var watchRequest = Etcdserverpb_WatchRequest()
        watchRequest.createRequest = create
        let request = watchRequest
        return try await withFailover("Watch", idempotent: true) { member in
            // Finishes at the first answer, or with the failure that came instead.
            let (confirmation, confirm) = AsyncThrowingStream.makeStream(of: Void.self)
            let task = Task {
                do {
                    try await member.watch.watch(
                        options: Self.streamOptions,
                        requestProducer: { writer in
                            try await writer.write(request)
                            // Keep the request side open: the call ends when its reader stops.
                            try await Task.sleep(for: .seconds(86_400 * 365))
                        },
                        onResponse: { response in
                            for try await message in response.messages {
                                confirm.finish()
                                try await handle(message)
                            }
                        })
                    throw StoreError(.unavailable, "etcd at \(member.endpoint) closed the watch stream")
                } catch {
                    let failure =
                        (error as? RPCError).map { Self.storeError($0, method: "Watch", endpoint: member.endpoint, idempotent: true) }
                        ?? error
                    confirm.finish(throwing: failure)
                    throw failure
                }
            }
            do {
                try await withTimeout("Watch", on: member.endpoint) {
                    for try await _ in confirmation {}
                }
            } catch {
                task.cancel()
                throw error
            }
            return RunningWatch(endpoint: member.endpoint, task: task)
        }
    }

    /// Renews a lease once: etcd's keep-alive stream, asked once and closed.
    func keepAliveOnce(_ id: Int64) async throws -> Etcdserverpb_LeaseKeepAliveResponse? {
        var keepAlive = Etcdserverpb_LeaseKeepAliveRequest()
        keepAlive.id = id
        let request = keepAlive
        let options = unaryOptions
        return try await withFailover("LeaseKeepAlive", idempotent: true) { member in
            do {
                return try await member.lease.leaseKeepAlive(
                    options: options,
                    requestProducer: { writer in
                        try await writer.write(request)
                        try await Task.sleep(for: .seconds(86_400 * 365))
                    },
                    onResponse: { response in
                        for try await message in response.messages { return message }
                        return nil
                    })
            } catch let error as RPCError {
                throw Self.storeError(error, method: "LeaseKeepAlive", endpoint: member.endpoint, idempotent: true)
            }
        }
    }

    /// Moves calls off `endpoint` (one that went silent), if it is the member they go to now.
    func avoid(_ endpoint: String) {
        guard let index = members.firstIndex(where: { $0.endpoint == endpoint }) else { return }
        preferred.withLock { current in
            if current % members.count == index { current = (index + 1) % members.count }
        }
    }

    /// Runs `body`, failing with a timeout error when it takes longer than the request timeout.
    private func withTimeout<T: Sendable>(
        _ method: String, on endpoint: String, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let timeout = requestTimeout
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw StoreError(.unavailable, "etcd at \(endpoint) did not answer \(method) within \(timeout)")
            }
            return value
        }
    }

    /// Runs `attempt` against the preferred member, moving on to the next one on failures that
    /// allow it. `attempt` throws the store's errors (see `storeError`).
    private func withFailover<T: Sendable>(
        _ method: String, idempotent: Bool, _ attempt: @Sendable (Member) async throws -> T
    ) async throws -> T {
        let deadline = ContinuousClock.now + failoverWindow
        var tries = 0
        while true {
            let index = preferred.withLock { $0 }
            let member = members[index % members.count]
            let failure: StoreError
            do {
                return try await attempt(member)
            } catch let error as StoreError {
                guard error.code == .unavailable else { throw error }
                failure = error
            } catch {
                if Task.isCancelled { throw CancellationError() }
                throw error
            }
            if Task.isCancelled { throw CancellationError() }
            tries += 1
            // Whether or not this call may be sent again, the next ones go to another member.
            preferred.withLock { current in
                if current == index { current = (index + 1) % members.count }
            }
            // `storeError` has already turned a write of unknown outcome into an error that is
            // not `.unavailable`; what remains may be sent again.
            guard ContinuousClock.now < deadline else { throw failure }
            if members.count > 1 {
                logger.warning(
                    "etcd member failed; trying the next one",
                    metadata: ["etcd.endpoint": "\(member.endpoint)", "etcd.next": "\(currentEndpoint)", "error": "\(failure.message)"])
            }
            // After a full round of members, wait a little: an election takes a moment.
            if tries % members.count == 0 {
                try await Task.sleep(for: .milliseconds(min(1000, 100 * tries)))
            }
        }
    }

    /// Maps a failed call onto the store's errors. `.unavailable` means "may be sent again",
    /// to this or another member: a failure before the call left for the member, an etcd
    /// refusal before proposing ("no leader"), or any failure of a call that only reads.
    /// A write that may have been applied fails with `.io`, saying its outcome is unknown.
    static func storeError(_ error: RPCError, method: String, endpoint: String, idempotent: Bool) -> StoreError {
        let text = error.message
        if let known = etcdError(text) { return known }
        switch error.code {
        case .invalidArgument, .failedPrecondition:
            return StoreError(.invalidArgument, "etcd: \(text)")
        case .cancelled where Task.isCancelled:
            return StoreError(.io, "etcd \(method) cancelled")
        case .unavailable where neverSent(error):
            return StoreError(.unavailable, "etcd at \(endpoint) is unreachable: \(rootCause(error))", underlying: error)
        case .unavailable, .deadlineExceeded, .cancelled, .unknown, .internalError, .resourceExhausted:
            let refused = text.contains("no leader") || text.contains("not capable")
            if idempotent || refused {
                return StoreError(.unavailable, "etcd at \(endpoint) is unavailable: \(describe(error))", underlying: error)
            }
            return StoreError(
                .io, "etcd at \(endpoint) failed during \(method); the write may or may not have been applied: \(describe(error))",
                underlying: error)
        default:
            return StoreError(.io, "etcd at \(endpoint) answered \(method) with \(describe(error))", underlying: error)
        }
    }

    /// The store's error for one of etcd's own error messages, if it is one with a meaning.
    static func etcdError(_ text: String) -> StoreError? {
        if text.contains("required revision has been compacted") { return StoreError(.compacted, "etcd: \(text)") }
        if text.contains("required revision is a future revision") { return StoreError(.futureRevision, "etcd: \(text)") }
        if text.contains("requested lease not found") { return StoreError(.leaseNotFound, "etcd: \(text)") }
        return nil
    }

    /// Whether the call failed in the client before anything was sent to the member: its
    /// connection is down or being set up (gRPC's channel refuses fast-failing calls then).
    private static func neverSent(_ error: RPCError) -> Bool {
        let text = error.message.lowercased()
        return ["channel is in a transient failure", "channel isn't ready", "channel is shutdown", "channel is closed",
                "subchannel shutdown", "failed to resolve"].contains { text.hasPrefix($0) }
    }

    /// The innermost cause of a connection failure ("Connection refused (errno: 111)").
    private static func rootCause(_ error: RPCError) -> String {
        var cause: any Error = error
        while let next = (cause as? RPCError)?.cause { cause = next }
        if let rpc = cause as? RPCError { return rpc.message }
        if let io = cause as? IOError { return String(cString: strerror(io.errnoCode)) }
        return "\(cause)"
    }

    private static func describe(_ error: RPCError) -> String {
        var text = "\(error.code): \(error.message)"
        if let cause = error.cause { text += " (\(cause))" }
        return text
    }

    /// `HOST` and `PORT` of `http://HOST:PORT`.
    static func hostAndPort(_ endpoint: String) throws -> (String, Int) {
        var rest = Substring(endpoint)
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port),
            colon > rest.startIndex
        else {
            throw StoreError(.invalidArgument, "etcd endpoint \(endpoint) is not HOST:PORT")
        }
        var host = rest[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        return (String(host), port)
    }
}
