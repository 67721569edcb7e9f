import AsyncHTTPClient
import CapstanCore
import Foundation
import NIOCore
import NIOFoundationCompat

extension CapstanClient {
    /// Changes under `prefix` from store revision `from` (nil: from now on), as they happen.
    ///
    /// Reconnects by itself when the connection drops after it was established, resuming after
    /// the last event seen (`Last-Event-ID`), so no event is lost or repeated. Fails on a server
    /// error such as `compacted`.
    public func watch(_ prefix: String, from: Int64? = nil, includeContent: Bool = true) -> ConfigWatch {
        ConfigWatch(client: self, prefix: prefix, from: from, includeContent: includeContent)
    }
}

/// The events of a watch; see `CapstanClient.watch`.
public struct ConfigWatch: AsyncSequence, Sendable {
    public typealias Element = ConfigEvent

    let client: CapstanClient
    let prefix: String
    let from: Int64?
    let includeContent: Bool

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(watch: self)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let watch: ConfigWatch
        var body: HTTPClientResponse.Body.AsyncIterator?
        var parser = ServerSentEventParser()
        var pending: [ConfigEvent] = []
        /// The last revision delivered; a reconnect resumes after it.
        var lastRevision: Int64?
        var connectedOnce = false
        var failures = 0
        /// The server the stream is open on.
        var connectedTo: String?

        init(watch: ConfigWatch) {
            self.watch = watch
        }

        public mutating func next() async throws -> ConfigEvent? {
            while true {
                if !pending.isEmpty { return pending.removeFirst() }
                try Task.checkCancellation()
                if body == nil {
                    do {
                        let (iterator, startedAfter, server) = try await connect()
                        connectedTo = server
                        body = iterator
                        // Watching "from now": pin now, so a reconnect before the first event
                        // still resumes from here instead of from a later "now".
                        if lastRevision == nil, watch.from == nil { lastRevision = startedAfter }
                        connectedOnce = true
                        failures = 0
                    } catch let error as ClientError where error.problem != nil || !connectedOnce {
                        throw error
                    } catch {
                        try await backOff()
                        continue
                    }
                }
                let chunk: ByteBuffer?
                do {
                    chunk = try await body?.next()
                } catch {
                    // Silent for too long, or cut: resume on the next server, if there is one.
                    if let connectedTo { watch.client.avoid(connectedTo) }
                    chunk = nil
                }
                guard let chunk else {
                    // The stream ended (server restart, network): resume after the last event.
                    body = nil
                    parser = ServerSentEventParser()
                    try await backOff()
                    continue
                }
                for message in parser.feed(Array(buffer: chunk)) {
                    switch message.event {
                    case "error":
                        if let problem = try? CapstanClient.decoder.decode(Problem.self, from: Data(message.data.utf8)) {
                            throw ClientError(problem: problem)
                        }
                        throw ClientError("watch failed: \(message.data)")
                    case "put", "delete":
                        let event = try CapstanClient.decoder.decode(ConfigEvent.self, from: Data(message.data.utf8))
                        lastRevision = event.revision
                        pending.append(event)
                    default:
                        continue
                    }
                }
            }
        }

        /// Opens the stream; answers it, the revision the server was at (events come after it),
        /// and the server.
        private func connect() async throws -> (HTTPClientResponse.Body.AsyncIterator, Int64?, String) {
            let client = watch.client
            var query: [(String, String?)] = [("prefix", watch.prefix)]
            if lastRevision == nil { query.append(("from", watch.from.map(String.init))) }
            if !watch.includeContent { query.append(("content", "false")) }
            let lastRevision = self.lastRevision
            // Opening a watch changes nothing: any replica may take it, from where it left off.
            let (response, server) = try await client.withFailover(idempotent: true) { server in
                var request = HTTPClientRequest(url: client.url(server, "/v1/watch", query))
                request.tlsConfiguration = client.tlsConfiguration
                request.headers.add(name: "Accept", value: "text/event-stream")
                if let token = client.token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
                if let identity = client.identity { request.headers.add(name: "X-Capstan-Client", value: identity.header) }
                // A stream has its connection to itself, not one back from the pool: reused after
                // a stream a shutting-down server ended, it would carry the next request into
                // that server and keep it from finishing.
                request.headers.add(name: "Connection", value: "close")
                if let lastRevision { request.headers.add(name: "Last-Event-ID", value: String(lastRevision)) }
                return (try await client.watchHTTP.execute(request, deadline: .distantFuture), server)
            }
            if response.status.code >= 400 {
                let body = try await response.body.collect(upTo: 1 << 20)
                throw CapstanClient.error(status: response.status, body: body)
            }
            let revision = response.headers.first(name: "X-Capstan-Revision").flatMap { Int64($0) }
            return (response.body.makeAsyncIterator(), revision, server)
        }

        /// Exponential backoff with full jitter, capped at 10 s.
        private mutating func backOff() async throws {
            failures += 1
            let cap = Swift.min(10.0, 0.1 * pow(2.0, Double(Swift.min(failures, 10))))
            try await Task.sleep(for: .milliseconds(Int(Double.random(in: 0...cap) * 1000)))
        }
    }
}

/// Splits a Server-Sent Events byte stream into messages.
public struct ServerSentEventParser: Sendable {
    public struct Message: Sendable, Equatable {
        public var id: String?
        public var event: String
        public var data: String
    }

    private var line: [UInt8] = []
    private var id: String?
    private var event = ""
    private var data: [String] = []

    public init() {}

    /// Feeds bytes; answers the messages completed by them.
    public mutating func feed(_ bytes: [UInt8]) -> [Message] {
        var messages: [Message] = []
        for byte in bytes {
            guard byte == UInt8(ascii: "\n") else {
                line.append(byte)
                continue
            }
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            let text = String(decoding: line, as: UTF8.self)
            line.removeAll(keepingCapacity: true)
            if text.isEmpty {
                if !data.isEmpty || !event.isEmpty {
                    messages.append(Message(id: id, event: event.isEmpty ? "message" : event, data: data.joined(separator: "\n")))
                }
                event = ""
                data = []
                continue
            }
            if text.hasPrefix(":") { continue }
            let (field, value) = Self.split(text)
            switch field {
            case "id": id = value
            case "event": event = value
            case "data": data.append(value)
            default: break
            }
        }
        return messages
    }

    private static func split(_ line: String) -> (String, String) {
        guard let colon = line.firstIndex(of: ":") else { return (line, "") }
        var value = line[line.index(after: colon)...]
        if value.first == " " { value = value.dropFirst() }
        return (String(line[..<colon]), String(value))
    }
}
