import AsyncHTTPClient
import CapstanCore
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// The typed Swift client of the Capstan HTTP API.
public struct CapstanClient: Sendable {
    /// Base URL of the server, e.g. `http://127.0.0.1:8740`.
    public let server: String
    /// Recorded as the author of writes.
    public var author: String
    /// Requests other than watches and long polls give up after this long.
    public var timeout: TimeAmount = .seconds(30)
    let http: HTTPClient

    public static let defaultServer = "http://127.0.0.1:8740"

    /// The HTTP client shared by all `CapstanClient`s unless one is given: it fails fast when the
    /// server is down instead of retrying the connection until the request's deadline.
    public static let sharedHTTPClient: HTTPClient = {
        var configuration = HTTPClient.Configuration.singletonConfiguration
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(5)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    public init(
        server: String = CapstanClient.defaultServer, author: String = "anonymous",
        httpClient: HTTPClient = CapstanClient.sharedHTTPClient
    ) {
        var server = server
        while server.hasSuffix("/") { server.removeLast() }
        if !server.contains("://") { server = "http://" + server }
        self.server = server
        self.author = author
        self.http = httpClient
    }

    /// A response whose status was checked: body collected, headers at hand.
    struct Answer {
        var status: HTTPResponseStatus
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()

    func url(_ path: String, _ query: [(String, String?)] = []) -> String {
        var url = server + path
        let items = query.compactMap { name, value in value.map { "\(name)=\(Self.percentEncode($0))" } }
        if !items.isEmpty { url += "?" + items.joined(separator: "&") }
        return url
    }

    static func percentEncode(_ text: String) -> String {
        // RFC 3986 unreserved characters (ASCII only) and "/".
        let allowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    func send(
        _ method: HTTPMethod,
        _ path: String,
        query: [(String, String?)] = [],
        headers: [(String, String)] = [],
        body: Data? = nil,
        timeout: TimeAmount? = nil,
        accept: Set<Int> = []
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: url(path, query))
        request.method = method
        request.headers.add(name: "X-Capstan-Author", value: author)
        request.headers.add(name: "User-Agent", value: "capstan-cli")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.body = .bytes(ByteBuffer(data: body))
        }
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await http.execute(request, timeout: timeout ?? self.timeout)
            body = try await response.body.collect(upTo: 64 << 20)
        } catch {
            throw ClientError("cannot reach Capstan at \(server): \(Self.describe(error))")
        }
        let code = Int(response.status.code)
        if code >= 400, !accept.contains(code) {
            throw Self.error(status: response.status, body: body)
        }
        return Answer(status: response.status, headers: response.headers, body: body)
    }

    static func error(status: HTTPResponseStatus, body: ByteBuffer) -> ClientError {
        if let problem = try? decoder.decode(Problem.self, from: Data(buffer: body)) {
            return ClientError(problem: problem)
        }
        return ClientError("server answered \(status.code) \(status.reasonPhrase)")
    }

    static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.contains("connectTimeout") { return "connection timed out" }
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        if text.contains("deadlineExceeded") { return "request timed out" }
        return text
    }

    func decode<T: Decodable>(_ type: T.Type, _ answer: Answer) throws -> T {
        do {
            return try Self.decoder.decode(T.self, from: Data(buffer: answer.body))
        } catch {
            throw ClientError("server answered something that is not a \(T.self): \(error)")
        }
    }
}
