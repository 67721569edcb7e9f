import Foundation
import Logging
import NIOCore

/// Stops accepting for a moment when accept fails for want of descriptors (EMFILE, ENFILE), and
/// tries again after a pause that doubles while the shortage lasts (to a second).
///
/// The listening socket stays readable while connections wait in its queue, and the event loop's
/// own backoff leaves it registered: without this, a server out of descriptors calls accept in a
/// loop and spins a core at 100 % until a descriptor frees. Sits first on the listening channel.
final class AcceptBackoff: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Channel
    typealias InboundOut = Channel

    static let firstPause = TimeAmount.milliseconds(20)
    static let longestPause = TimeAmount.seconds(1)

    private let logger: Logger
    private var pause = AcceptBackoff.firstPause
    private var paused = false

    init(logger: Logger) {
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A connection accepted: the shortage, if any, is over.
        pause = Self.firstPause
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? IOError, error.errnoCode == EMFILE || error.errnoCode == ENFILE else {
            context.fireErrorCaught(error)
            return
        }
        guard !paused else { return }
        if pause == Self.firstPause {
            logger.warning(
                "out of file descriptors: new connections wait in the listen queue until some close",
                metadata: ["error": "\(error)"])
        }
        paused = true
        let channel = context.channel
        _ = channel.setOption(ChannelOptions.autoRead, value: false)
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: pause) {
            loopBound.value.paused = false
            _ = channel.setOption(ChannelOptions.autoRead, value: true)
        }
        pause = min(pause * 2, Self.longestPause)
    }
}

extension AcceptBackoff {
    /// Descriptors kept free of connections: for the store's files (SQLite opens its database,
    /// WAL and shared memory per connection), etcd's channels, logs and certificates.
    static let reserved = 64

    /// How many connections the server holds at once: its descriptor limit (`ulimit -n`, read at
    /// start, after `DescriptorLimit.raise()` when run as the server command) less `reserved`;
    /// past it, new connections wait in the listen queue.
    static var connectionLimit: Int {
        guard let limit = DescriptorLimit.current, limit.soft < rlim_t(Int.max) else { return Int.max }
        return max(16, Int(clamping: limit.soft) - reserved)
    }
}
