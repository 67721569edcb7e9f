import CapstanCore
import Foundation
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import CapstanServer

/// Heartbeats and reports read on the event loop; every other frame passed on unchanged.
@Suite("Agent frame reader")
struct AgentFrameReaderTests {
    /// A channel with the reader, which records what it took; what passes is read back inbound.
    final class Taken {
        var messages: [AgentMessage] = []
    }

    func channel(taking taken: Taken) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            AgentFrameReader { message in
                taken.messages.append(message)
                return true
            })
        return channel
    }

    /// A frame as an agent (a WebSocket client) sends it: masked.
    func frame(_ text: String, opcode: WebSocketOpcode = .text, fin: Bool = true, rsv1: Bool = false) -> WebSocketFrame {
        let key: WebSocketMaskingKey = [0x12, 0x9a, 0x00, 0xff]
        var data = ByteBuffer(string: text)
        data.webSocketMask(key)
        return WebSocketFrame(fin: fin, rsv1: rsv1, opcode: opcode, maskKey: key, data: data)
    }

    func passed(_ channel: EmbeddedChannel) throws -> [String] {
        var texts: [String] = []
        while let frame = try channel.readInbound(as: WebSocketFrame.self) { texts.append(String(buffer: frame.unmaskedData)) }
        return texts
    }

    static let heartbeat = #"{"v":2,"type":"heartbeat","heartbeat":{"sequence":7}}"#
    static let report = #"{"report":{"template":"web","revision":12,"state":"applied","time":1765000000123},"type":"report","v":2}"#

    @Test func heartbeatsAndReportsInOneFrameAreTakenWhereTheyLand() throws {
        let taken = Taken()
        let channel = try channel(taking: taken)
        try channel.writeInbound(frame(Self.heartbeat))
        try channel.writeInbound(frame(Self.report))
        // Unmasked (a frame a server would send) reads the same.
        try channel.writeInbound(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: Self.heartbeat)))
        #expect(try passed(channel).isEmpty)
        let heartbeat = try AgentMessage.decode(Self.heartbeat)
        let report = try AgentMessage.decode(Self.report)
        #expect(taken.messages == [heartbeat, report, heartbeat])
        #expect(try channel.finish().isClean)
    }

    @Test func everyOtherFramePassesInOrder() throws {
        let taken = Taken()
        let channel = try channel(taking: taken)
        let hello = try AgentMessage.encode(
            AgentMessage(
                type: .hello,
                hello: .init(
                    facts: NodeFacts(
                        hostname: "h", os: "linux", kernel: "6", arch: "x86_64", cpuCount: 1, memoryBytes: 1, addresses: [],
                        agentVersion: "1", bootTime: nil), labels: [:])))
        let frames = [
            frame(hello),
            // A message in three frames: its pieces pass, the last one too though it reads as a heartbeat.
            frame("{", fin: false),
            frame("", opcode: .ping),
            frame("\"x\":1}", opcode: .continuation, fin: false),
            frame(Self.heartbeat, opcode: .continuation),
            // Non-ASCII text (UTF-8 is the stream's to check), reserved bits, binary, blanks.
            frame(Self.report.replacingOccurrences(of: "web", with: "wéb")),
            frame(Self.heartbeat, rsv1: true),
            frame(Self.heartbeat, opcode: .binary),
            frame(Self.heartbeat.replacingOccurrences(of: ",", with: ", ")),
            frame(""),
            // Longer than what the reader reads.
            frame(Self.heartbeat + String(repeating: " ", count: AgentFrameReader.maxReadBytes)),
        ]
        for frame in frames { try channel.writeInbound(frame) }
        #expect(try passed(channel) == frames.map { String(buffer: $0.unmaskedData) })
        #expect(taken.messages.isEmpty)
        // After the fragmented message ended, a heartbeat is taken again.
        try channel.writeInbound(frame(Self.heartbeat))
        #expect(taken.messages.count == 1)
        #expect(try channel.finish().isClean)
    }

    @Test func aMessageTheReceiverDeclinesPasses() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(AgentFrameReader { _ in false })
        try channel.writeInbound(frame(Self.report))
        #expect(try passed(channel) == [Self.report])
        #expect(try channel.finish().isClean)
    }
}
