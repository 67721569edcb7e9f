import CapstanCore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

/// Where a connection's errors end: a request the HTTP decoder cannot parse is answered (400,
/// 431 or 505, as problem+json) and the connection closed at once; a failed TLS handshake is
/// logged once, with the client address. Either way `ConnectionEnd` records that the end was
/// reported, so the framework's own line about the same end is not logged again.
///
/// Without it a malformed first request got no answer and held its connection for ever: the
/// decoder's error reached no one while the connection waited to learn whether it would be
/// upgraded to a WebSocket. Sits last in the pipeline at setup, so every error passes it; the
/// HTTP handlers added once the request is routed come after it.
final class ConnectionErrorHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let end: ConnectionEnd
    private let logger: Logger
    /// Requests read whose responses have not ended.
    private var open = 0
    /// A request's head has come and its end not yet: a route may be reading its body.
    private var unfinished = false
    /// A parse error came while a response was in progress: close once it ends.
    private var closeWhenAnswered = false

    init(end: ConnectionEnd, logger: Logger) {
        self.end = end
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            open += 1
            unfinished = true
        case .end:
            unfinished = false
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        open = max(0, open - 1)
        guard closeWhenAnswered, open == 0 else {
            context.write(data, promise: promise)
            return
        }
        context.writeLastThenClose(data, promise: promise)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // A WebSocket now: no HTTP parts pass here any more, and the socket's frames must not.
        if let upgrade = event as? HTTPServerUpgradeEvents, case .upgradeComplete = upgrade {
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case let error as HTTPParserError:
            refuse(context: context, error)
        case NIOSSLError.handshakeFailed(let cause):
            // The TLS handler closes the connection itself.
            reportOnce(context: context, "TLS handshake failed", cause)
        case is ByteToMessageDecoderError where closeWhenAnswered:
            // Bytes after the malformed request, while the connection lingers to close: dropped.
            break
        default:
            context.fireErrorCaught(error)
        }
    }

    private func refuse(context: ChannelHandlerContext, _ error: HTTPParserError) {
        guard !closeWhenAnswered else { return }
        closeWhenAnswered = true
        let problem = Self.problem(for: error)
        if end.markReported() {
            logger.debug(
                "malformed request refused",
                metadata: ["client.address": "\(context.clientAddress)", "error": "\(error)"])
        }
        guard open == 0, !unfinished else {
            // A response is in progress (a pipelined request, a body that broke its framing), or
            // a request's body is cut short (the connection ended mid-body, after a 408): the
            // route sees the error if it reads on, rather than a body that merely ends, and the
            // connection closes after its answer.
            context.fireErrorCaught(error)
            if open == 0 { context.closeAfterRefusal() }
            return
        }
        let answer = RefusalAnswer(problem)
        let head = HTTPResponseHead(
            version: .http1_1, status: HTTPResponseStatus(statusCode: answer.status),
            headers: HTTPHeaders(answer.headerFields.map { ($0.name.rawName, $0.value) }))
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(answer.body))), promise: nil)
        context.writeLastThenClose(wrapOutboundOut(.end(nil)))
    }

    private func reportOnce(context: ChannelHandlerContext, _ message: Logger.Message, _ error: any Error) {
        guard end.markReported() else { return }
        logger.info(message, metadata: ["client.address": "\(context.clientAddress)", "error": "\(error)"])
    }

    /// The answer to a request the decoder refused.
    static func problem(for error: HTTPParserError) -> Problem {
        let (status, detail): (Int, String) =
            switch error {
            case .headerOverflow:
                (431, "the request head is over the limits: \(HTTPEdgeLimits.maxFieldSize / 1024) KiB for the URL or a header, "
                    + "\(HTTPEdgeLimits.maxHeadSize / 1024) KiB in all, \(HTTPEdgeLimits.maxFieldCount) headers")
            case .invalidVersion:
                (505, "only HTTP/1.0 and HTTP/1.1 are served")
            case .invalidMethod:
                (400, "the request line's method is not a valid token")
            case .invalidURL:
                (400, "the request line's URL is not valid")
            case .invalidHeaderToken, .invalidConstant, .lfExpected, .invalidCharactersUsed:
                (400, "a header line is not NAME: VALUE in valid characters")
            case .invalidContentLength:
                (400, "Content-Length is not one non-negative number")
            case .unexpectedContentLength:
                (400, "a request must not have both Content-Length and Transfer-Encoding")
            case .invalidChunkSize:
                (400, "a chunk of the body has no valid size")
            default:
                (400, "the request is not valid HTTP/1.1 (\(error))")
            }
        return Problem(
            title: ProblemMapping.title(status), status: status, detail: detail, code: CapstanError.Code.invalidArgument.rawValue)
    }
}
