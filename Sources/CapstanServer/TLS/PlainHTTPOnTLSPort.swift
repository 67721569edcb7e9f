import CapstanCore
import Foundation
import Logging
import NIOCore

/// Answers plain HTTP sent to the TLS port with a 400 that says to use `https://` (as Go's
/// servers do), instead of the empty reply a failed handshake gives, and closes.
///
/// Sits before the TLS handler and looks at the connection's first byte only: a TLS handshake
/// starts with 0x16, an HTTP request with a method's capital letter. A handshake passes on and
/// the handler leaves; a plain request is answered once, and every later segment of it is dropped
/// (the TLS handler would fail on it and close both ways at once, which can reset the connection
/// before the client reads the answer).
final class PlainHTTPOnTLSPort: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The whole answer, as problem+json like every other refusal (the CLI shows its detail).
    static let answer = RefusalAnswer(
        Problem(
            title: ProblemMapping.title(400), status: 400,
            detail: "Client sent an HTTP request to an HTTPS server: use https:// (this server serves TLS only)",
            code: CapstanError.Code.invalidArgument.rawValue))

    private let end: ConnectionEnd
    private let logger: Logger
    /// The connection was answered: nothing read from now on is passed on.
    private var refused = false

    init(end: ConnectionEnd, logger: Logger) {
        self.end = end
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        let buffer = unwrapInboundIn(data)
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else {
            context.fireChannelRead(data)
            return
        }
        guard (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(first) else {
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        refused = true
        if end.markReported() {
            logger.info(
                "plain HTTP on the TLS port refused", metadata: ["client.address": "\(context.clientAddress)"])
        }
        context.writeLastThenClose(wrapOutboundOut(Self.answer.bytes))
    }
}
