import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// Closes a connection whose first request head has not fully arrived within `timeout` of the
/// connection opening, however slowly its bytes trickle in: a client that opens many connections
/// and drips headers into them (slowloris) holds none for long. Sits before the HTTP decoder and
/// leaves once the head's blank line has passed; `NextHeadDeadline` bounds the heads of the
/// connection's later requests.
final class RequestHeadDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let timeout: TimeAmount
    private let end: ConnectionEnd
    private let logger: Logger
    private var timer: Scheduled<Void>?
    /// The last bytes seen, so that a blank line split across reads is found.
    private var tail: [UInt8] = []

    init(timeout: TimeAmount, end: ConnectionEnd, logger: Logger) {
        self.timeout = timeout
        self.end = end
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let (end, logger) = (self.end, self.logger)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let context = loopBound.value
            if end.markReported() {
                logger.debug("request head not whole within the head timeout", metadata: ["client.address": "\(context.clientAddress)"])
            }
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let bytes = tail + buffer.readableBytesView
        let complete = bytes.count >= 4 && (0...(bytes.count - 4)).contains { index in
            bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10
        }
        tail = Array(bytes.suffix(3))
        context.fireChannelRead(data)
        if complete {
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }
}

/// Bounds the heads of a kept-alive connection's later requests as `RequestHeadDeadline` bounds
/// its first: once every request on the connection is answered, the first bytes that come start
/// the clock, and the next request head must be whole within `timeout` or the connection closes.
///
/// Without it a client could answer the idle timeout by dripping a byte of its next head every
/// minute and hold the connection for ever. A connection with no bytes in flight is left to the
/// idle timeout; a request in progress (a long poll, a stream, a slow upload) is never cut.
/// Sits after the HTTP decoder: it counts request heads in and response ends out, and takes the
/// decoder's read-complete events as "bytes arrived".
final class NextHeadDeadline: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?
    /// Request heads read whose responses have not ended.
    private var open = 0

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            open += 1
            disarm()
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Bytes came and left no request open: part of a next head, or noise. Either way the
        // head must be whole within the timeout.
        if open == 0, timer == nil {
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            timer = context.eventLoop.scheduleTask(in: timeout) {
                loopBound.value.close(promise: nil)
            }
        }
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            open = max(0, open - 1)
        }
        context.write(data, promise: promise)
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
    }
}
