import AsyncHTTPClient
import CapstanClient
import CapstanCore
import CapstanServer
import CapstanStore
import CapstanTesting
import Foundation
import Synchronization
import NIOCore
import Testing

@Suite("Client against a live server")
struct ClientLiveTests {
    @Test(arguments: StoreEngine.allCases)
    func watchDeliversChangesInOrderThenResumesFromLastEventID(engine: StoreEngine) async throws {
        try await LiveServer.with(engine: engine) { server in
            let client = CapstanClient(server: server.url, author: "tester", token: TestAuth.rootToken)
            _ = try await client.createNamespace("live")
            let start = try await client.put("live/seed.txt", content: Data("0".utf8)).revision
            var watch = client.watch("live/", from: start + 1).makeAsyncIterator()
            var written: [Int64] = []
            for index in 1...5 {
                written.append(try await client.put("live/k\(index % 2).txt", content: Data("\(index)".utf8)).revision)
            }
            try await client.delete("live/k0.txt")
            var received: [ConfigEvent] = []
            while received.count < 6, let event = try await watch.next() { received.append(event) }
            #expect(received.prefix(5).map(\.revision) == written)
            #expect(received.prefix(5).map(\.content) == (1...5).map { "\($0)" })
            #expect(received.last?.type == .delete)
            #expect(received.first?.author == "tester (token root)")

            // A raw request with Last-Event-ID resumes right after that event.
            var request = HTTPClientRequest(url: "\(server.url)/v1/watch?prefix=live/")
            request.headers.add(name: "Last-Event-ID", value: String(written[2]))
            request.headers.add(name: "Authorization", value: "Bearer \(server.token)")
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            #expect(response.status == .ok)
            #expect(response.headers.first(name: "Content-Type") == "text/event-stream")
            var parser = ServerSentEventParser()
            var resumed: [ServerSentEventParser.Message] = []
            for try await chunk in response.body {
                resumed += parser.feed(Array(buffer: chunk))
                if resumed.count >= 3 { break }
            }
            #expect(resumed.map(\.id) == [String(written[3]), String(written[4]), String(received[5].revision)])
            #expect(resumed.map(\.event) == ["put", "put", "delete"])
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func watchFromACompactedRevisionAnswers410(engine: StoreEngine) async throws {
        try await LiveServer.with(engine: engine) { server in
            let client = CapstanClient(server: server.url, token: TestAuth.rootToken)
            _ = try await client.createNamespace("old")
            var last: Int64 = 0
            for index in 0..<4 { last = try await client.put("old/a.txt", content: Data("\(index)".utf8)).revision }
            try await server.store.compact(upTo: last)
            do {
                for try await _ in client.watch("old/", from: 1) { break }
                Issue.record("watch from a compacted revision succeeded")
            } catch let error as ClientError {
                #expect(error.code == "compacted")
                #expect(error.problem?.status == 410)
                #expect(error.problem?.compactRevision == last)
            }
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func longPollOverHTTPReturnsWhenTheKeyChanges(engine: StoreEngine) async throws {
        try await LiveServer.with(engine: engine) { server in
            let client = CapstanClient(server: server.url, token: TestAuth.rootToken)
            _ = try await client.createNamespace("poll")
            let first = try await client.put("poll/flag.txt", content: Data("off".utf8))
            let current = try await client.get("poll/flag.txt")
            #expect(current.index >= first.revision)
            let waiter = Task {
                try await client.get("poll/flag.txt", index: current.index, wait: .seconds(60))
            }
            try await client.put("poll/flag.txt", content: Data("on".utf8))
            let changed = try await withTimeout(.seconds(10), "long poll") { try await waiter.value }
            #expect(String(decoding: changed.content, as: UTF8.self) == "on")
            #expect(changed.index > current.index)
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func errorsCarryTheProblemCode(engine: StoreEngine) async throws {
        try await LiveServer.with(engine: engine) { server in
            let client = CapstanClient(server: server.url, token: TestAuth.rootToken)
            do {
                _ = try await client.put("nowhere/a.yaml", content: Data("a: 1".utf8))
                Issue.record("put into a missing namespace succeeded")
            } catch let error as ClientError {
                #expect(error.code == "namespace_not_found")
                #expect(error.description.contains("namespace nowhere not found"))
            }
            _ = try await client.createNamespace("errs")
            do {
                _ = try await client.put("errs/a.yaml", content: Data("a: [\n".utf8))
                Issue.record("malformed YAML accepted")
            } catch let error as ClientError {
                #expect(error.code == "invalid_content")
                #expect(error.problem?.line == 2)
            }
        }
        let unreachable = CapstanClient(server: "http://127.0.0.1:1")
        await #expect(throws: ClientError.self) { _ = try await unreachable.namespaces() }
    }

    @Test func serverSentEventParserHandlesSplitChunks() {
        var parser = ServerSentEventParser()
        let stream = ": hello\n\nid: 7\nevent: put\ndata: {\"a\":\ndata: 1}\n\nid: 8\r\nevent: delete\r\ndata: x\r\n\r\n"
        var messages: [ServerSentEventParser.Message] = []
        for byte in Array(stream.utf8) { messages += parser.feed([byte]) }
        #expect(messages.count == 2)
        #expect(messages[0].id == "7")
        #expect(messages[0].data == "{\"a\":\n1}")
        #expect(messages[1].event == "delete")
        #expect(messages[1].id == "8")
    }
}

/// A server that answers a watch's headers and then says nothing, as a replica whose host
/// vanished would look to a client whose connection was never closed.
final class SilentWatchServer: Sendable {
    let url: String
    private let descriptor: Int32

    init() throws {
        let (listener, url) = try loopbackListener()
        descriptor = listener
        self.url = url
        Thread {
            var open: [Int32] = []
            while true {
                let connection = accept(listener, nil, nil)
                guard connection >= 0 else { break }
                open.append(connection)
                var buffer = [UInt8](repeating: 0, count: 4096)
                _ = read(connection, &buffer, buffer.count)
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                _ = head.withCString { write(connection, $0, strlen($0)) }
            }
            for connection in open { close(connection) }
        }.start()
    }

    func stop() {
        shutdown(descriptor, Int32(SHUT_RDWR))
        close(descriptor)
    }
}

extension ClientLiveTests {
    @Test(.timeLimit(.minutes(1))) func aWatchOnASilentServerMovesToTheNextOne() async throws {
        try await LiveServer.with { server in
            let writer = CapstanClient(server: server.url, author: "tester", token: TestAuth.rootToken)
            _ = try await writer.createNamespace("quiet")
            let written = try await writer.put("quiet/a.txt", content: Data("1".utf8)).revision
            let silent = try SilentWatchServer()
            defer { silent.stop() }
            // Short enough to keep the test quick, long enough for a busy machine's live server.
            let watchHTTP = CapstanClient.makeWatchHTTPClient(idleTimeout: .seconds(2))
            // The silent one first: the watch connects there, hears nothing, and resumes on the
            // live server from where it was (the start).
            let client = CapstanClient(server: "\(silent.url),\(server.url)", author: "tester", token: TestAuth.rootToken, watchHTTPClient: watchHTTP)
            // The HTTP client must be shut down whatever happens (its deinit traps otherwise).
            do {
                var events = client.watch("quiet/", from: written).makeAsyncIterator()
                let first = try await events.next()
                #expect(first?.revision == written)
                #expect(first?.key == "quiet/a.txt")
            } catch {
                try? await watchHTTP.shutdown()
                throw error
            }
            try await watchHTTP.shutdown()
        }
    }
}

extension ClientLiveTests {
    /// A read whose connection the server closed before answering (an idle connection closed just
    /// as it was reused) is sent once more; a write is not, and the error says it may have applied.
    @Test func aReadIsSentAgainOnAClosedConnectionAndAWriteIsNot() async throws {
        let server = try HangUpOnceServer()
        defer { server.stop() }
        let client = CapstanClient(server: server.url, token: "cap_x_y")
        do {
            _ = try await client.whoami()
            Issue.record("the read succeeded against a server that only answers 404")
        } catch let error as ClientError {
            #expect(error.problem?.detail == "answered on the second connection", "\(error)")
        }
        #expect(server.requests == 2)

        let writes = try HangUpOnceServer()
        defer { writes.stop() }
        let writer = CapstanClient(server: writes.url, token: "cap_x_y")
        do {
            _ = try await writer.createNamespace("once")
            Issue.record("the write succeeded against a server that hung up")
        } catch let error as ClientError {
            #expect(error.message.contains("may or may not have been applied"), "\(error)")
        }
        #expect(writes.requests == 1)
    }
}

/// A server that reads the first request and closes the connection without a word, then answers
/// every later request with a 404 problem.
final class HangUpOnceServer: Sendable {
    let url: String
    private let descriptor: Int32
    private let count = Mutex(0)

    var requests: Int { count.withLock { $0 } }

    init() throws {
        let (listener, url) = try loopbackListener()
        descriptor = listener
        self.url = url
        Thread { [self] in
            while true {
                let connection = accept(listener, nil, nil)
                guard connection >= 0 else { break }
                var buffer = [UInt8](repeating: 0, count: 65536)
                guard read(connection, &buffer, buffer.count) > 0 else {
                    close(connection)
                    continue
                }
                let number = self.count.withLock { value in
                    value += 1
                    return value
                }
                if number > 1 {
                    let body = #"{"type":"about:blank","title":"Not Found","status":404,"detail":"answered on the second connection","code":"not_found"}"#
                    let answer = "HTTP/1.1 404 Not Found\r\nContent-Type: application/problem+json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
                    _ = answer.withCString { write(connection, $0, strlen($0)) }
                }
                close(connection)
            }
        }.start()
    }

    func stop() {
        shutdown(descriptor, Int32(SHUT_RDWR))
        close(descriptor)
    }
}

/// A listening TCP socket on a free loopback port, and its `http://` URL.
func loopbackListener() throws -> (descriptor: Int32, url: String) {
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let listening = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(listener, pointer, length) == 0 && listen(listener, 8) == 0
                && getsockname(listener, pointer, &length) == 0
        }
    }
    guard listening else {
        close(listener)
        throw POSIXError(.EADDRINUSE)
    }
    return (listener, "http://127.0.0.1:\(UInt16(bigEndian: address.sin_port))")
}
