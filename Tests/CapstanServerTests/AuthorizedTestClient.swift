import HTTPTypes
import HummingbirdTesting
import NIOCore

/// A test client that sends `token` with every request that names no `Authorization` itself.
struct AuthorizedTestClient: TestClientProtocol {
    let client: any TestClientProtocol
    let token: String

    var port: Int? { client.port }

    func executeRequest(uri: String, method: HTTPRequest.Method, headers: HTTPFields, body: ByteBuffer?) async throws -> TestResponse {
        var headers = headers
        if headers[.authorization] == nil { headers[.authorization] = "Bearer \(token)" }
        return try await client.executeRequest(uri: uri, method: method, headers: headers, body: body)
    }
}
