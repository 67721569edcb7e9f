import NIOCore
import NIOHTTP1

/// Sends one HTTP/1.1 request as soon as its connection is up. Before a WebSocket upgrade it
/// asks for the upgrade (the upgrade handler adds its headers) and is removed once it is done; a
/// response that reaches it means the upgrade was refused, and the connection is closed.
final class HTTPRequestOnActive: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let head: HTTPRequestHead

    init(head: HTTPRequestHead) {
        self.head = head
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.close(promise: nil)
    }
}
