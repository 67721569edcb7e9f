import NIOCore

/// The point on an agent's connection, next to the socket (below the WebSocket frame encoder),
/// from which its outbox writes messages already framed (`FramedText`). It passes every other
/// write through.
final class AgentFrameWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
}
