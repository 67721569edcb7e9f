import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTPTypes

/// Bounds the time a request's body may take to arrive, from its head to its last byte: a
/// client that drips a body a byte every few seconds holds a connection (and a route reading
/// it) for no longer than `timeout`.
///
/// When the time is up the connection is answered 408 (unless an answer has started) and closed.
/// From then on the request is over for the route too: the body parts that still come are
/// dropped, the route's read of the body throws (so it stores nothing, even if the last bytes
/// arrive while the connection lingers to close), and whatever the route writes is dropped.
///
/// A request whose head says it has no body (no `Content-Length`, no `Transfer-Encoding`) starts
/// no clock. The clock starts at the head, but its timer is set only when a read ends with the
/// body still coming: most bodies arrive with their head, and a timer set and cancelled per
/// request was a visible share of a small put. Sits after the HTTP decoder, beside `NextHeadDeadline`.
final class RequestBodyDeadline: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?
    /// When the body being read must be whole; nil when no body is awaited.
    private var deadline: NIODeadline?
    /// An answer to the request being read has started.
    private var answered = false
    /// The time ran out: the connection is closing, and nothing more passes either way.
    private var expired = false

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !expired else { return }
        switch unwrapInboundIn(data) {
        case .head(let request):
            answered = false
            disarm()
            if request.headerFields[.contentLength].map({ $0 != "0" }) ?? false || request.headerFields[.transferEncoding] != nil {
                deadline = .now() + timeout
            }
        case .end:
            disarm()
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // The read ended with a body still coming: its clock runs from the head.
        if let deadline, timer == nil, !expired {
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            timer = context.eventLoop.scheduleTask(deadline: deadline) {
                let (handler, context) = loopBound.value
                handler.expire(context: context)
            }
        }
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !expired else {
            // The route's late answer to a request the client was told timed out.
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        if case .head(let response) = unwrapOutboundIn(data), response.status.kind != .informational {
            answered = true
        }
        context.write(data, promise: promise)
    }

    private func expire(context: ChannelHandlerContext) {
        timer = nil
        deadline = nil
        expired = true
        let milliseconds = timeout.nanoseconds / 1_000_000
        let limit = milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
        let detail = "the request body did not arrive whole within \(limit) (--request-body-timeout)"
        // The route's read of the body throws rather than ending: a body cut short is never whole.
        context.fireErrorCaught(HTTPError(.requestTimeout, message: detail))
        guard !answered else {
            context.close(promise: nil)
            return
        }
        answered = true
        let problem = Problem(
            title: ProblemMapping.title(408), status: 408, detail: detail, code: CapstanError.Code.invalidArgument.rawValue)
        let answer = RefusalAnswer(problem)
        context.write(wrapOutboundOut(.head(HTTPResponse(status: .requestTimeout, headerFields: answer.headerFields))), promise: nil)
        context.write(wrapOutboundOut(.body(answer.body)), promise: nil)
        context.writeLastThenClose(wrapOutboundOut(.end(nil)))
    }

    private func disarm() {
        deadline = nil
        timer?.cancel()
        timer = nil
    }
}
