import NIOCore

/// A text message and the bytes of the WebSocket frames that carry it from a server (unmasked),
/// built once: a template set shared by thousands of agents is framed once, not per connection,
/// and every connection writes the same bytes.
struct FramedText: Sendable {
    /// The message's text.
    let text: ByteBuffer
    /// Its frames: a text frame, then continuation frames, of at most `maxFrameBytes` each.
    let frames: ByteBuffer

    init(_ text: ByteBuffer, maxFrameBytes: Int = AgentOutbox.maxFrameBytes) {
        self.text = text
        var rest = text
        var frames = ByteBuffer()
        frames.reserveCapacity(text.readableBytes + 10 * (text.readableBytes / maxFrameBytes + 1))
        var first = true
        repeat {
            var piece = rest.readSlice(length: min(maxFrameBytes, rest.readableBytes)) ?? ByteBuffer()
            Self.writeHeader(into: &frames, fin: rest.readableBytes == 0, continuation: !first, length: piece.readableBytes)
            frames.writeBuffer(&piece)
            first = false
        } while rest.readableBytes > 0
        self.frames = frames
    }

    /// RFC 6455 section 5.2: FIN and opcode, then the payload length in 7 bits, or 126 and 16
    /// bits, or 127 and 64 bits; no mask (a server's frames are not masked).
    private static func writeHeader(into buffer: inout ByteBuffer, fin: Bool, continuation: Bool, length: Int) {
        let opcode: UInt8 = continuation ? 0x0 : 0x1
        buffer.writeInteger((fin ? 0x80 : 0) | opcode)
        if length < 126 {
            buffer.writeInteger(UInt8(length))
        } else if length <= Int(UInt16.max) {
            buffer.writeInteger(UInt8(126))
            buffer.writeInteger(UInt16(length))
        } else {
            buffer.writeInteger(UInt8(127))
            buffer.writeInteger(UInt64(length))
        }
    }
}
