import NIOCore
import NIOEmbedded
import Testing

@testable import CapstanStore

@Suite("etcd connection: PING responder")
struct PingResponderTests {
    /// An HTTP/2 frame: 9-byte header, then the payload.
    func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, payload: [UInt8]) -> [UInt8] {
        let length = payload.count
        var bytes: [UInt8] = [UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), type, flags]
        bytes += [UInt8(stream >> 24 & 0xff), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff)]
        return bytes + payload
    }

    func ping(_ payload: [UInt8], ack: Bool = false) -> [UInt8] {
        frame(type: 0x6, flags: ack ? 1 : 0, payload: payload)
    }

    /// Feeds `bytes` in pieces of `chunk` and returns what the handler passed on and wrote back.
    func run(_ bytes: [UInt8], chunk: Int) throws -> (passed: [UInt8], written: [UInt8]) {
        let channel = EmbeddedChannel(handler: PingResponder())
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + chunk, bytes.count)
            try channel.writeInbound(ByteBuffer(bytes: bytes[offset..<end]))
            offset = end
        }
        var passed: [UInt8] = []
        while let buffer = try channel.readInbound(as: ByteBuffer.self) { passed += Array(buffer.readableBytesView) }
        var written: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { written += Array(buffer.readableBytesView) }
        _ = try channel.finish()
        return (passed, written)
    }

    @Test(arguments: [1, 2, 5, 9, 16, 17, 1000])
    func pingsAreAnsweredAndEverythingElsePassesUnchanged(chunk: Int) throws {
        let headers = frame(type: 0x1, flags: 0x4, stream: 1, payload: Array(repeating: 0xAB, count: 20))
        let data = frame(type: 0x0, flags: 0x1, stream: 1, payload: Array(0..<200).map { UInt8($0 & 0xff) })
        // A DATA frame whose payload happens to look like a PING header must pass untouched.
        let tricky = frame(type: 0x0, stream: 3, payload: ping([9, 9, 9, 9, 9, 9, 9, 9]))
        let serverPing = ping([1, 2, 3, 4, 5, 6, 7, 8])
        let secondPing = ping([8, 7, 6, 5, 4, 3, 2, 1])
        let ackOfOurPing = ping([0, 0, 0, 0, 0, 0, 0, 42], ack: true)
        let input = headers + serverPing + data + tricky + secondPing + ackOfOurPing + serverPing
        let (passed, written) = try run(input, chunk: chunk)
        #expect(passed == headers + data + tricky + ackOfOurPing)
        let ack1 = ping([1, 2, 3, 4, 5, 6, 7, 8], ack: true)
        let ack2 = ping([8, 7, 6, 5, 4, 3, 2, 1], ack: true)
        #expect(written == ack1 + ack2 + ack1)
    }

    @Test
    func anIncompleteFrameWaitsForTheRest() throws {
        let channel = EmbeddedChannel(handler: PingResponder())
        let serverPing = ping([1, 2, 3, 4, 5, 6, 7, 8])
        try channel.writeInbound(ByteBuffer(bytes: serverPing.prefix(12)))
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        try channel.writeInbound(ByteBuffer(bytes: serverPing.dropFirst(12)))
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        let written = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(Array(written.readableBytesView) == ping([1, 2, 3, 4, 5, 6, 7, 8], ack: true))
        _ = try channel.finish()
    }

    @Test
    func aMalformedPingIsLeftToTheHTTP2Parser() throws {
        // A PING must carry 8 bytes; anything else is the HTTP/2 layer's protocol error to raise.
        let odd = frame(type: 0x6, payload: [1, 2, 3])
        let (passed, written) = try run(odd, chunk: 100)
        #expect(passed == odd)
        #expect(written.isEmpty)
    }
}
