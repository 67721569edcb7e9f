import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOSSL

/// The server's child channel: the HTTP/WebSocket channel with the edge's guards around it.
///
/// In pipeline order: on the TLS port, `PlainHTTPOnTLSPort` and the TLS handler; then
/// `RequestHeadDeadline` (its clock starts with the connection, so a stalled handshake is cut off
/// too); the base channel's HTTP handlers; and last `ConnectionErrorHandler`, which every error
/// reaches.
struct HTTPEdge<Base: ServerChildChannel>: ServerChildChannel {
    struct Value: ServerChildChannelValue {
        let base: Base.Value
        let end: ConnectionEnd
        var channel: any Channel { base.channel }
    }

    let base: Base
    let headTimeout: TimeAmount
    /// Serves TLS when set.
    let tls: NIOSSLContext?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let end = ConnectionEnd()
        return channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            if let tls {
                try pipeline.addHandler(PlainHTTPOnTLSPort(end: end, logger: logger))
                try pipeline.addHandler(NIOSSLServerHandler(context: tls))
            }
            try pipeline.addHandler(RequestHeadDeadline(timeout: headTimeout, end: end, logger: logger))
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }.flatMapThrowing { value in
            try channel.pipeline.syncOperations.addHandler(ConnectionErrorHandler(end: end, logger: logger))
            return Value(base: value, end: end)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value.base, logger: value.end.logger(logger))
    }
}

/// Limits of the HTTP decoder, in one place for the decoder and the 431 answer that names them.
enum HTTPEdgeLimits {
    /// One URL or header field.
    static let maxFieldSize = 16 * 1024
    /// The whole request head.
    static let maxHeadSize = 64 * 1024
    static let maxFieldCount = 100

    static var decoder: HTTP1Channel.Configuration.DecoderConfiguration {
        .init(maxHeaderFieldSize: maxFieldSize, maxHeaderListSize: maxHeadSize, maxHeaderFieldCount: maxFieldCount)
    }
}
