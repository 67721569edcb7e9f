import CapstanCore
import Foundation
import HTTPTypes
import NIOCore

/// An answer the edge writes itself, below the router (a malformed request, a body cut off at
/// its timeout, plain HTTP on the TLS port): the problem as its problem+json body, and the head
/// fields that go with it. The connection closes after it.
struct RefusalAnswer {
    let status: Int
    let body: ByteBuffer

    init(_ problem: Problem) {
        status = problem.status
        body = ByteBuffer(bytes: (try? HTTPHelpers.encoder.encode(problem)) ?? Data())
    }

    /// `Content-Type`, `Content-Length` and `Connection: close`, in the order written.
    var headerFields: HTTPFields {
        [.contentType: "application/problem+json", .contentLength: String(body.readableBytes), .connection: "close"]
    }

    /// The whole answer as HTTP/1.1 bytes, for a handler that sits below the HTTP codec.
    var bytes: ByteBuffer {
        var bytes = ByteBuffer(string: "HTTP/1.1 \(status) \(ProblemMapping.title(status))\r\n")
        for field in headerFields { bytes.writeString("\(field.name.rawName): \(field.value)\r\n") }
        bytes.writeString("\r\n")
        bytes.writeImmutableBuffer(body)
        return bytes
    }
}
