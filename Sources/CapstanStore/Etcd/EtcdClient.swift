import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// etcd's v3 API through its HTTP/JSON gateway, over one or more cluster members.
///
/// Calls go to one member at a time. When it cannot be reached, or answers that it has no
/// leader, the call moves to the next member and retries until `failoverWindow` passes. A
/// write is retried only when it surely was not applied (the connection was never made, or the
/// member refused it before proposing it); otherwise its outcome is unknown and the caller
/// gets an error saying so.
final class EtcdClient: Sendable {
    let endpoints: [String]
    private let preferred = Mutex(0)
    private let http: HTTPClient
    private let logger: Logger
    private let failoverWindow: Duration
    /// How long a member may take to answer a call (or to start answering a stream).
    let requestTimeout: Duration

    init(endpoints: [String], requestTimeout: Duration = .seconds(10), failoverWindow: Duration = .seconds(15), logger: Logger) {
        precondition(!endpoints.isEmpty, "etcd needs at least one endpoint")
        self.endpoints = endpoints
        self.requestTimeout = requestTimeout
        self.failoverWindow = max(failoverWindow, requestTimeout * 2)
        self.logger = logger
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(2))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 256)
        configuration.decompression = .disabled
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    func shutdown() async {
        try? await http.shutdown()
    }

    /// The member calls go to now.
    var currentEndpoint: String {
        endpoints[preferred.withLock { $0 } % endpoints.count]
    }

    /// Calls a unary gateway method, e.g. `/v3/kv/range`.
    func call<Request: Encodable & Sendable, Response: Decodable>(
        _ path: String, _ body: Request, as: Response.Type = Response.self, idempotent: Bool
    ) async throws -> Response {
        let payload = try JSONEncoder().encode(body)
        let bytes = try await withFailover(path, idempotent: idempotent) { endpoint in
            try await self.attempt(path, payload, on: endpoint)
        }
        return try Self.decode(Response.self, bytes, path: path)
    }

    /// Calls a unary gateway method on one member, with no failover.
    func call<Request: Encodable & Sendable, Response: Decodable>(
        _ path: String, _ body: Request, on endpoint: String
    ) async throws -> Response {
        let bytes = try await attempt(path, try JSONEncoder().encode(body), on: endpoint)
        return try Self.decode(Response.self, bytes, path: path)
    }

    /// One unary request to one member: the answer's body, or the store's error for an error answer.
    private func attempt(_ path: String, _ payload: Data, on endpoint: String) async throws -> ByteBuffer {
        let response = try await http.execute(request(endpoint + path, payload), timeout: Self.timeAmount(requestTimeout))
        let body = try await response.body.collect(upTo: 256 << 20)
        guard response.status == .ok else { throw Self.error(path: path, status: response.status.code, body: body) }
        return body
    }

    private static func decode<Response: Decodable>(_ type: Response.Type, _ bytes: ByteBuffer, path: String) throws -> Response {
        do {
            return try JSONDecoder().decode(Response.self, from: Data(bytes.readableBytesView))
        } catch {
            throw StoreError(.io, "etcd answered \(path) with a message Capstan cannot read: \(error)", underlying: error)
        }
    }

    /// Opens a streamed gateway method (`/v3/watch`, `/v3/lease/keepalive`) and hands over the
    /// `result` of each message until the stream ends or the consuming task is cancelled; an
    /// `error` message fails the stream with the store's error.
    func stream<Request: Encodable & Sendable, Result: Decodable & Sendable>(
        _ path: String, _ body: Request, results: Result.Type
    ) async throws -> AsyncThrowingStream<Result, any Error> {
        try await openStream(path, body, results: results).stream
    }

    /// `stream`, with the member it was opened on.
    func openStream<Request: Encodable & Sendable, Result: Decodable & Sendable>(
        _ path: String, _ body: Request, results: Result.Type
    ) async throws -> (stream: AsyncThrowingStream<Result, any Error>, endpoint: String) {
        let payload = try JSONEncoder().encode(body)
        let (response, endpoint) = try await withFailover(path, idempotent: true) { endpoint in
            // The response head must come within the request timeout: a member that accepts
            // connections but does not answer (frozen, cut off) is passed over.
            let response = try await self.withTimeout(path) {
                try await self.http.execute(self.request(endpoint + path, payload), deadline: .distantFuture)
            }
            if response.status == .ok { return (response, endpoint) }
            let body = try await response.body.collect(upTo: 1 << 20)
            throw Self.error(path: path, status: response.status.code, body: body)
        }
        let stream = AsyncThrowingStream<Result, any Error> { continuation in
            let task = Task {
                do {
                    var pending = Data()
                    for try await chunk in response.body {
                        pending.append(contentsOf: chunk.readableBytesView)
                        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                            let line = pending[pending.startIndex..<newline]
                            if !line.isEmpty, let result = try Self.result(of: Data(line), as: Result.self, path: path) {
                                continuation.yield(result)
                            }
                            pending.removeSubrange(pending.startIndex...newline)
                        }
                    }
                    continuation.finish(throwing: StoreError(.io, "etcd closed the \(path) stream"))
                } catch let error as StoreError {
                    continuation.finish(throwing: error)
                } catch {
                    continuation.finish(throwing: StoreError(.io, "the \(path) stream from etcd failed: \(error)", underlying: error))
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
        return (stream, endpoint)
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        .nanoseconds(duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    /// Moves calls off `endpoint` (one that went silent), if it is the member they go to now.
    func avoid(_ endpoint: String) {
        guard let index = endpoints.firstIndex(of: endpoint) else { return }
        preferred.withLock { current in
            if current % endpoints.count == index { current = (index + 1) % endpoints.count }
        }
    }

    /// Runs `body`, failing with a timeout error when it takes longer than the request timeout.
    private func withTimeout<T: Sendable>(_ path: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let timeout = requestTimeout
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw HTTPClientError.deadlineExceeded
            }
            return value
        }
    }

    /// One message of a stream: its result, nil for a message without one, or its error thrown.
    private static func result<Result: Decodable>(of line: Data, as: Result.Type, path: String) throws -> Result? {
        let message = try JSONDecoder().decode(EtcdWire.StreamMessage<Result>.self, from: line)
        if let failure = message.error {
            throw error(code: failure.code, message: failure.message, path: path)
        }
        return message.result
    }

    private func request(_ url: String, _ payload: Data) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: payload))
        return request
    }

    /// Runs `attempt` against the preferred member, moving on to the next one on failures that
    /// allow it. `attempt` throws the store's error for an error answer.
    private func withFailover<T: Sendable>(
        _ path: String, idempotent: Bool, _ attempt: @Sendable (String) async throws -> T
    ) async throws -> T {
        let deadline = ContinuousClock.now + failoverWindow
        var tries = 0
        while true {
            let index = preferred.withLock { $0 }
            let endpoint = endpoints[index % endpoints.count]
            let failure: StoreError
            let retry: Bool
            do {
                return try await attempt(endpoint)
            } catch let error as StoreError {
                guard error.code == .unavailable else { throw error }
                // Refused before it was proposed ("no leader"): safe to send elsewhere, write
                // or not. Other unavailable answers ("request timed out") may come after the
                // proposal: only reads are retried then.
                guard idempotent || Self.refusedBeforeProposal(error) else {
                    throw StoreError(
                        .unavailable, "\(error.message); the write may or may not have been applied", underlying: error)
                }
                failure = error
                retry = true
            } catch {
                if Task.isCancelled { throw CancellationError() }
                let neverConnected = Self.isConnectFailure(error)
                failure = StoreError(
                    .io,
                    neverConnected || idempotent
                        ? "etcd at \(endpoint) is unreachable: \(error)"
                        : "etcd at \(endpoint) failed during \(path); the write may or may not have been applied: \(error)",
                    underlying: error)
                retry = neverConnected || idempotent
            }
            tries += 1
            // Whether or not this call may be sent again, the next ones go to another member.
            preferred.withLock { current in
                if current == index { current = (index + 1) % endpoints.count }
            }
            guard retry, ContinuousClock.now < deadline else { throw failure }
            if endpoints.count > 1 {
                logger.warning(
                    "etcd member failed; trying the next one",
                    metadata: ["etcd.endpoint": "\(endpoint)", "etcd.next": "\(currentEndpoint)", "error": "\(failure.message)"])
            }
            // After a full round of members, wait a little: an election takes a moment.
            if tries % endpoints.count == 0 {
                try await Task.sleep(for: .milliseconds(min(1000, 100 * tries)))
            }
        }
    }

    private static func refusedBeforeProposal(_ error: StoreError) -> Bool {
        error.message.contains("no leader") || error.message.contains("not capable")
    }

    private static func isConnectFailure(_ error: any Error) -> Bool {
        if let error = error as? HTTPClientError {
            return error == .connectTimeout
        }
        if error is NIOConnectionError { return true }
        if let error = error as? IOError {
            return [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, ECONNRESET].contains(error.errnoCode)
        }
        if let error = error as? ChannelError, case .connectTimeout = error { return true }
        return false
    }

    /// Maps the gateway's error answer (a gRPC status) onto the store's errors.
    static func error(path: String, status: UInt, body: ByteBuffer) -> StoreError {
        let decoded = try? JSONDecoder().decode(EtcdWire.ErrorBody.self, from: Data(body.readableBytesView))
        let message = decoded?.message ?? String(buffer: body)
        return error(code: decoded?.code ?? 0, message: message, path: path, status: status)
    }

    static func error(code: Int, message: String, path: String, status: UInt = 0) -> StoreError {
        switch (code, message) {
        case (_, let text) where text.contains("required revision has been compacted"):
            return StoreError(.compacted, "etcd: \(text)")
        case (_, let text) where text.contains("required revision is a future revision"):
            return StoreError(.futureRevision, "etcd: \(text)")
        case (_, let text) where text.contains("requested lease not found"):
            return StoreError(.leaseNotFound, "etcd: \(text)")
        case (3, let text):
            return StoreError(.invalidArgument, "etcd: \(text)")
        case (14, let text):
            return StoreError(.unavailable, "etcd is unavailable: \(text)")
        default:
            return StoreError(.io, "etcd answered \(path) with \(status == 0 ? "" : "HTTP \(status), ")gRPC code \(code): \(message)")
        }
    }
}
