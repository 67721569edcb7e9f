import NIOCore

/// Answers the HTTP/2 PING frames etcd sends, below the HTTP/2 layer, so that they do not count
/// against swift-nio-http2's limit on control frames.
///
/// etcd's gRPC server (grpc-go) estimates the connection's bandwidth-delay product by sending a
/// PING whenever data arrives and none is outstanding: about one per round trip under steady
/// load, thousands a minute. swift-nio-http2 takes more than 200 control frames in 30 seconds
/// for a denial-of-service attack and closes the connection, failing every call on it, and
/// gRPC's transport offers no setting for that limit. This handler sits between the socket and
/// the HTTP/2 parser: it answers each PING from etcd with its ACK at once and passes every other
/// frame on untouched. PING ACKs (answers to the client's own keep-alive pings) pass on as well.
final class PingResponder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let frameHeaderLength = 9
    static let pingType: UInt8 = 0x6
    static let ackFlag: UInt8 = 0x1
    static let pingPayloadLength = 8

    /// Bytes read but not yet passed on or answered: at most one incomplete frame header or PING.
    private var unread: ByteBuffer?
    /// Bytes of the frame being passed on that have not arrived yet.
    private var passing = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        var buffer: ByteBuffer
        if var held = unread {
            held.writeBuffer(&incoming)
            buffer = held
            unread = nil
        } else {
            buffer = incoming
        }
        var forward = 0  // bytes at the front of `buffer` to pass on
        while buffer.readableBytes > forward {
            if passing > 0 {
                let step = min(passing, buffer.readableBytes - forward)
                forward += step
                passing -= step
                continue
            }
            let start = buffer.readerIndex + forward
            guard buffer.readableBytes - forward >= Self.frameHeaderLength,
                let length = frameLength(buffer, at: start),
                let type = buffer.getInteger(at: start + 3, as: UInt8.self),
                let flags = buffer.getInteger(at: start + 4, as: UInt8.self)
            else { break }
            let isPing = type == Self.pingType && flags & Self.ackFlag == 0 && length == Self.pingPayloadLength
            guard isPing else {
                passing = Self.frameHeaderLength + length
                continue
            }
            guard buffer.readableBytes - forward >= Self.frameHeaderLength + length else { break }
            // Pass on what came before the PING, then answer it.
            if forward > 0, let before = buffer.readSlice(length: forward) {
                context.fireChannelRead(wrapInboundOut(before))
                forward = 0
            }
            buffer.moveReaderIndex(forwardBy: Self.frameHeaderLength)
            let payload = buffer.readSlice(length: length)!
            context.writeAndFlush(wrapOutboundOut(ack(payload, allocator: context.channel.allocator)), promise: nil)
        }
        if forward > 0, let passed = buffer.readSlice(length: forward) {
            context.fireChannelRead(wrapInboundOut(passed))
        }
        if buffer.readableBytes > 0 { unread = buffer }
    }

    private func frameLength(_ buffer: ByteBuffer, at index: Int) -> Int? {
        guard let high = buffer.getInteger(at: index, as: UInt8.self), let low = buffer.getInteger(at: index + 1, as: UInt16.self)
        else { return nil }
        return Int(high) << 16 | Int(low)
    }

    private func ack(_ payload: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        var frame = allocator.buffer(capacity: Self.frameHeaderLength + payload.readableBytes)
        frame.writeInteger(UInt8(0))
        frame.writeInteger(UInt16(payload.readableBytes))
        frame.writeInteger(Self.pingType)
        frame.writeInteger(Self.ackFlag)
        frame.writeInteger(UInt32(0))  // stream 0: the connection
        frame.writeImmutableBuffer(payload)
        return frame
    }
}
