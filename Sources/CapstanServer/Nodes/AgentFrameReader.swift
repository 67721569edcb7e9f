import CapstanCore
import NIOCore
import NIOWebSocket

/// Reads an agent's heartbeats and template reports on the connection's event loop, as their
/// frames come off the socket, and hands every other frame on to the WebSocket stream.
///
/// Heartbeats (2,000 a second from 10,000 agents) and reports (one per agent per push) are most
/// of what agents send. Through the stream, each one woke the connection's task: a hop from the
/// event loop to Swift's global executor and back for every message. Here each is read where
/// it lands, with no task involved and nothing allocated but the report itself.
///
/// Only what the fast decoder reads goes this way: a whole text message in one frame, ASCII,
/// without reserved bits, in the plain form agents write (`AgentMessage.quickDecode`). Anything
/// else, a fragmented message's frames included, goes on to the stream unchanged and in order,
/// where the gateway reads it as before.
final class AgentFrameReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame

    /// Messages longer than this go to the stream (heartbeats and reports are ~150 bytes).
    static let maxReadBytes = 1024

    /// Handles one heartbeat or report; answers false for a message it does not take.
    private let receive: (AgentMessage) -> Bool
    /// A fragmented message is passing: its continuation frames pass too.
    private var inFragmentedMessage = false

    init(receive: @escaping (AgentMessage) -> Bool) {
        self.receive = receive
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text where frame.fin && !inFragmentedMessage:
            if let message = Self.message(in: frame), receive(message) { return }
        case .text, .binary:
            inFragmentedMessage = !frame.fin
        case .continuation:
            if frame.fin { inFragmentedMessage = false }
        default:
            break
        }
        context.fireChannelRead(data)
    }

    /// The heartbeat or report a single text frame holds, unmasked on the stack; nil for
    /// anything the fast decoder does not read.
    static func message(in frame: WebSocketFrame) -> AgentMessage? {
        let length = frame.data.readableBytes
        guard frame.reservedBits.isEmpty, frame.extensionData == nil, length > 0, length <= maxReadBytes else { return nil }
        return frame.data.withUnsafeReadableBytes { masked in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: length) { bytes -> AgentMessage? in
                var all: UInt8 = 0
                if let key = frame.maskKey {
                    for index in 0..<length {
                        bytes[index] = masked[index] ^ key[index & 3]
                        all |= bytes[index]
                    }
                } else {
                    for index in 0..<length {
                        bytes[index] = masked[index]
                        all |= bytes[index]
                    }
                }
                // Non-ASCII text goes the stream's way, where UTF-8 is checked.
                guard all < 0x80 else { return nil }
                return AgentMessage.quickDecode(utf8: UnsafeBufferPointer(bytes))
            }
        }
    }
}
