import NIOCore
import NIOHTTP1
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One watcher on etcd's HTTP watch (`POST /v3/watch`), run on the connection's event loop: it
/// sends the watch request, then reads the newline-delimited JSON answers as they come. The
/// first answer (`"created":true`) confirms the watch; each one after it that holds `"events"`
/// is a put seen. Like the simulated agents (`SimulatedAgentHandler`), each message is handled
/// where it lands, without a task, and with one substring search.
final class EtcdWatchHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    /// What every watcher of a fleet shares.
    struct Fleet: Sendable {
        var request: HTTPRequestHead
        var body: ByteBuffer
        /// When each watcher's watch was confirmed (revision 1).
        var created: ArrivalTracker
        /// When each watcher received its n-th event (revision n).
        var arrivals: ArrivalTracker
    }

    /// Whether a watcher's watch was confirmed: one that was is not opened again (it would miss events).
    final class Confirmation: Sendable {
        private let confirmed = Mutex(false)
        var isConfirmed: Bool { confirmed.withLock { $0 } }
        func confirm() { confirmed.withLock { $0 = true } }
    }

    private let index: Int
    private let fleet: Fleet
    private let confirmation: Confirmation
    private var pending: ByteBuffer?
    private var events: Int64 = 0

    init(index: Int, fleet: Fleet, confirmation: Confirmation) {
        self.index = index
        self.fleet = fleet
        self.confirmation = confirmation
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(fleet.request)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(fleet.body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.status != .ok { context.close(promise: nil) }
        case .body(var chunk):
            if pending == nil {
                pending = chunk
            } else {
                pending?.writeBuffer(&chunk)
            }
            readLines()
        case .end:
            context.close(promise: nil)
        }
    }

    private func readLines() {
        while var buffer = pending, let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
            let line = buffer.readSlice(length: newline - buffer.readerIndex + 1)!
            pending = buffer.readableBytes > 0 ? buffer : nil
            if Self.contains(line, #""created":true"#) {
                confirmation.confirm()
                fleet.created.seen(index, revision: 1, at: .now)
            } else if Self.contains(line, #""events""#) {
                events += 1
                fleet.arrivals.seen(index, revision: events, at: .now)
            }
        }
    }

    static func contains(_ buffer: ByteBuffer, _ needle: StaticString) -> Bool {
        buffer.withUnsafeReadableBytes { bytes in
            let count = needle.utf8CodeUnitCount
            guard let base = bytes.baseAddress, count > 0 else { return count == 0 }
            let first = needle.utf8Start.pointee
            var index = 0
            while index + count <= bytes.count {
                if bytes[index] == first, memcmp(base + index, needle.utf8Start, count) == 0 { return true }
                index += 1
            }
            return false
        }
    }
}
