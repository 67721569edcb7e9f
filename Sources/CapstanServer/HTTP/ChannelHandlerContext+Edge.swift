import NIOCore

extension ChannelHandlerContext {
    /// Ends a connection just answered with a refusal: the output closes at once (the client reads
    /// the answer, then the end), and the whole connection a moment later.
    ///
    /// Closing both ways at once while the client's bytes are still arriving would make the
    /// kernel reset the connection, and a reset can destroy the answer before the client reads it.
    func closeAfterRefusal(linger: TimeAmount = .seconds(1)) {
        let channel = self.channel
        close(mode: .output, promise: nil)
        channel.eventLoop.scheduleTask(in: linger) { channel.close(promise: nil) }
    }

    /// Writes and flushes `data`, the last part of a refusal, then `closeAfterRefusal()`.
    /// `promise`, if any, learns how the write went.
    func writeLastThenClose(_ data: NIOAny, promise: EventLoopPromise<Void>? = nil) {
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        writeAndFlush(data).whenComplete { result in
            promise?.completeWith(result)
            loopBound.value.closeAfterRefusal()
        }
    }

    /// The client's address and port as logs show it (`127.0.0.1:52114`).
    var clientAddress: String {
        guard let address = remoteAddress else { return "unknown" }
        return "\(address.ipAddress ?? "unknown"):\(address.port ?? 0)"
    }
}
