import CapstanCore
import Foundation
import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Bounds the time a request's body may take to arrive, from its head to its last byte: a
/// client that drips a body a byte every few seconds holds a connection (and a route reading
/// it) for no longer than `timeout`.
///
/// When the time is up the connection is answered 408 (unless an answer has started) and closed;
/// a route reading the body sees it end early and writes nothing. A request whose head says it
/// has no body (no `Content-Length`, no `Transfer-Encoding`) starts no clock. Sits after the HTTP
/// decoder, beside `NextHeadDeadline`.
final class RequestBodyDeadline: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?
    /// An answer to the request being read has started.
    private var answered = false

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            answered = false
            disarm()
            if request.headerFields[.contentLength].map({ $0 != "0" }) ?? false || request.headerFields[.transferEncoding] != nil {
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                timer = context.eventLoop.scheduleTask(in: timeout) {
                    let (handler, context) = loopBound.value
                    handler.expire(context: context)
                }
            }
        case .end:
            disarm()
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .head(let response) = unwrapOutboundIn(data), response.status.kind != .informational {
            answered = true
        }
        context.write(data, promise: promise)
    }

    private func expire(context: ChannelHandlerContext) {
        timer = nil
        guard !answered else {
            context.close(promise: nil)
            return
        }
        answered = true
        let milliseconds = timeout.nanoseconds / 1_000_000
        let limit = milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
        let problem = Problem(
            title: ProblemMapping.title(408), status: 408,
            detail: "the request body did not arrive whole within \(limit) (--request-body-timeout)",
            code: CapstanError.Code.invalidArgument.rawValue)
        let body = ByteBuffer(bytes: (try? HTTPHelpers.encoder.encode(problem)) ?? Data())
        let head = HTTPResponse(
            status: .requestTimeout,
            headerFields: [.contentType: "application/problem+json", .contentLength: String(body.readableBytes), .connection: "close"])
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            loopBound.value.closeAfterRefusal()
        }
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
    }
}
