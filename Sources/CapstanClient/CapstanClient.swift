import AsyncHTTPClient
import CapstanCore
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// The typed Swift client of the Capstan HTTP API.
///
/// It can be given several servers (replicas on one etcd): requests go to one of them and move
/// to the next when it cannot be reached, and a watch resumes on the next one where it left off.
public struct CapstanClient: Sendable {
    /// Base URLs of the servers, e.g. `http://127.0.0.1:8740`.
    public let servers: [String]
    /// The servers as given, for messages.
    public var server: String { servers.joined(separator: ",") }
    /// Recorded as the author of writes.
    public var author: String
    /// The API token sent as `Authorization: Bearer`; nil sends none.
    public var token: String?
    /// Who this client is to rollouts (`X-Capstan-Client`): a name and labels. Members of a
    /// rollout read its candidates; nil reads the main versions.
    public var identity: ClientIdentity?
    /// Requests other than watches and long polls give up after this long.
    public var timeout: TimeAmount = .seconds(30)
    /// TLS for `https://` servers: set by `trust(caCertificatePEM:)` to verify them by a CA of
    /// their own; nil uses the system's roots.
    public private(set) var tlsConfiguration: TLSConfiguration?
    let http: HTTPClient
    /// The HTTP client of watches: it gives up on a connection that stays silent for longer
    /// than `watchIdleTimeout`.
    let watchHTTP: HTTPClient
    /// Which server requests go to now; shared by the copies of this client.
    private let preferred = Preferred()

    final class Preferred: Sendable {
        let index = Mutex(0)
    }

    public static let defaultServer = "http://127.0.0.1:8740"

    /// The HTTP client shared by all `CapstanClient`s unless one is given: it fails fast when the
    /// server is down instead of retrying the connection until the request's deadline.
    public static let sharedHTTPClient: HTTPClient = {
        var configuration = HTTPClient.Configuration.singletonConfiguration
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(5)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// How long a watch waits in silence before it takes its connection for dead and resumes
    /// elsewhere: three of the server's 15-second heartbeats. Catches a replica that vanished
    /// without closing its connections (a host down, a network cut).
    public static let watchIdleTimeout: TimeAmount = .seconds(45)

    /// The HTTP client shared by watches unless one is given (see `watchIdleTimeout`).
    public static let sharedWatchHTTPClient: HTTPClient = makeWatchHTTPClient(idleTimeout: watchIdleTimeout)

    /// An HTTP client for watches that drops a connection silent for `idleTimeout`.
    public static func makeWatchHTTPClient(idleTimeout: TimeAmount) -> HTTPClient {
        var configuration = HTTPClient.Configuration.singletonConfiguration
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(5)
        configuration.timeout.read = idleTimeout
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// - Parameter server: one URL, or several separated by commas (replicas).
    public init(
        server: String = CapstanClient.defaultServer, author: String = "anonymous", token: String? = nil,
        httpClient: HTTPClient = CapstanClient.sharedHTTPClient,
        watchHTTPClient: HTTPClient = CapstanClient.sharedWatchHTTPClient
    ) {
        var servers: [String] = []
        for part in server.split(separator: ",") {
            var url = part.trimmingCharacters(in: .whitespaces)
            while url.hasSuffix("/") { url.removeLast() }
            if url.isEmpty { continue }
            if !url.contains("://") { url = "http://" + url }
            servers.append(url)
        }
        self.servers = servers.isEmpty ? [Self.defaultServer] : servers
        self.author = author
        self.token = token
        self.http = httpClient
        self.watchHTTP = watchHTTPClient
    }

    /// Verifies `https://` servers by this CA certificate (PEM) instead of the system's roots.
    public mutating func trust(caCertificatePEM pem: String) throws {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMBytes(Array(pem.utf8))
        } catch {
            throw ClientError("the CA certificate is not PEM: \(error)")
        }
        guard !certificates.isEmpty else { throw ClientError("the CA certificate file holds no certificate") }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.trustRoots = .certificates(certificates)
        tlsConfiguration = configuration
    }

    /// Moves requests off `server` (one that went silent) to the next one, if it is preferred now.
    func avoid(_ server: String) {
        guard let index = servers.firstIndex(of: server) else { return }
        preferred.index.withLock { current in
            if current == index { current = (index + 1) % servers.count }
        }
    }

    /// Runs `attempt` against the preferred server, moving on to the next ones when it cannot be
    /// reached. A request that may have reached a server is only sent again when `idempotent`.
    func withFailover<T>(idempotent: Bool, _ attempt: (String) async throws -> T) async throws -> T {
        let start = preferred.index.withLock { $0 }
        var failures: [String] = []
        for offset in 0..<servers.count {
            let index = (start + offset) % servers.count
            let server = servers[index]
            do {
                let result: T
                do {
                    result = try await attempt(server)
                } catch let error as HTTPClientError where idempotent && error == .remoteConnectionClosed {
                    // A pooled connection the server closed (idle timeout, restart) just as the
                    // request went out on it: once more, on a fresh connection, as browsers do.
                    result = try await attempt(server)
                }
                if offset > 0 { preferred.index.withLock { $0 = index } }
                return result
            } catch let error as ClientError {
                throw error
            } catch {
                var failure = "\(server): \(Self.describe(error))"
                if server.hasPrefix("http://"), let error = error as? HTTPClientError, error == .remoteConnectionClosed {
                    failure += " (a server that speaks TLS closes plain-HTTP connections: use https://)"
                }
                failures.append(failure)
                guard idempotent || Self.neverConnected(error) else {
                    throw ClientError(
                        "lost the connection to Capstan at \(server) during the request; it may or may not have been applied: \(Self.describe(error))")
                }
            }
        }
        if servers.count == 1, let only = failures.first {
            throw ClientError("cannot reach Capstan at \(only)")
        }
        throw ClientError("cannot reach Capstan at any of \(failures.joined(separator: "; "))")
    }

    /// Whether the request surely never reached the server.
    static func neverConnected(_ error: any Error) -> Bool {
        if let error = error as? HTTPClientError { return error == .connectTimeout }
        if error is NIOConnectionError { return true }
        if let error = error as? IOError { return [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH].contains(error.errnoCode) }
        if let error = error as? ChannelError, case .connectTimeout = error { return true }
        return false
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

    func url(_ server: String, _ path: String, _ query: [(String, String?)] = []) -> String {
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
        let (response, body) = try await withFailover(idempotent: method == .GET || method == .HEAD) { server in
            var request = HTTPClientRequest(url: url(server, path, query))
            request.tlsConfiguration = tlsConfiguration
            request.method = method
            request.headers.add(name: "X-Capstan-Author", value: author)
            request.headers.add(name: "User-Agent", value: "capstan-cli")
            if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
            if let identity { request.headers.add(name: "X-Capstan-Client", value: identity.header) }
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            if let body {
                request.body = .bytes(ByteBuffer(data: body))
            }
            let response = try await http.execute(request, timeout: timeout ?? self.timeout)
            return (response, try await response.body.collect(upTo: 64 << 20))
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
        if text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("certificate verify failed") {
            return "its TLS certificate is not trusted here (\(text)): pass --ca-cert FILE or set CAPSTAN_CA_CERT, "
                + "or run capstan login --ca-fingerprint with the fingerprint the server printed"
        }
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("wrong version number") {
            return "it does not speak TLS there (\(text)): use http:// for it"
        }
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
