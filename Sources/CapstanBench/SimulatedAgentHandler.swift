import CapstanCore
import Foundation
import NIOCore
import NIOWebSocket

/// One simulated agent on its WebSocket, run on the connection's event loop: it says hello,
/// sends a heartbeat every interval the welcome names, acknowledges each template set with a
/// report per template, and answers each job as succeeded at once.
///
/// Each message is handled where its frame lands, without a task: the simulator shares the cores
/// with the server, and its own cost is not what is measured. The etcd watchers
/// (`EtcdWatchHandler`) are run the same way.
final class SimulatedAgentHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// What every agent of a fleet shares.
    struct Fleet: Sendable {
        var label: String
        /// When each agent was welcomed (revision 1).
        var welcomed: ArrivalTracker
        /// When each agent received each revision.
        var arrivals: ArrivalTracker
        var reports: ReportCache
    }

    private let index: Int
    private let fleet: Fleet
    /// The pieces of a message that came in several frames.
    private var pieces: ByteBuffer?
    private var heartbeats: RepeatedTask?
    private var sequence: Int64 = 0
    /// Mask keys for the frames sent, which a client must mask.
    private var masks: SplitMix

    init(index: Int, fleet: Fleet) {
        self.index = index
        self.fleet = fleet
        masks = SplitMix(seed: UInt64(index) &* 0x9E37_79B9)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // Added once the upgrade is done, on an active channel.
        let facts = NodeFacts(
            hostname: "sim", os: "bench", kernel: "0", arch: "x86_64", cpuCount: 1, memoryBytes: 1 << 30, addresses: [],
            agentVersion: CapstanVersion.current, bootTime: nil)
        guard let hello = try? AgentMessage.encode(AgentMessage(type: .hello, hello: .init(facts: facts, labels: ["fleet": fleet.label]))) else {
            context.close(promise: nil)
            return
        }
        send(hello, context: context)
        context.flush()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        heartbeats?.cancel()
        heartbeats = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        heartbeats?.cancel()
        heartbeats = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary:
            if frame.fin {
                received(frame.data, context: context)
            } else {
                pieces = frame.data
            }
        case .continuation:
            var frameData = frame.data
            pieces?.writeBuffer(&frameData)
            if frame.fin, let message = pieces {
                pieces = nil
                received(message, context: context)
            }
        case .ping:
            context.writeAndFlush(
                wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, maskKey: nextMask(), data: frame.data)), promise: nil)
        case .connectionClose:
            context.close(promise: nil)
        default:
            break
        }
    }

    private func received(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        let text = String(buffer: buffer)
        guard heartbeats != nil else {
            welcome(text, context: context)
            return
        }
        // A job is answered at once, as done, without running anything.
        if let job = JobScan.start(in: text) {
            if let result = try? JobScan.succeeded(job) {
                send(result, context: context)
                context.flush()
            }
            return
        }
        guard let assignments = TemplatesScan.assignments(in: text) else { return }
        fleet.arrivals.seen(index, revision: assignments.map(\.revision).max() ?? 0, at: .now)
        for assignment in assignments {
            guard let report = try? fleet.reports.report(template: assignment.name, revision: assignment.revision) else { continue }
            send(report, context: context)
        }
        context.flush()
    }

    /// The first message: the welcome, with the heartbeat interval; anything else ends the connection.
    private func welcome(_ text: String, context: ChannelHandlerContext) {
        guard let interval = (try? AgentMessage.decode(text))?.welcome?.heartbeatIntervalMilliseconds, interval > 0 else {
            context.close(promise: nil)
            return
        }
        fleet.welcomed.seen(index, revision: 1, at: .now)
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let every = TimeAmount.milliseconds(interval)
        heartbeats = context.eventLoop.scheduleRepeatedTask(initialDelay: every, delay: every) { _ in
            bound.value.handler.heartbeat(context: bound.value.context)
        }
    }

    private func heartbeat(context: ChannelHandlerContext) {
        sequence += 1
        // The text AgentMessage.encode writes, without its JSONEncoder.
        send(#"{"v":\#(AgentMessage.currentVersion),"type":"heartbeat","heartbeat":{"sequence":\#(sequence)}}"#, context: context)
        context.flush()
    }

    private func send(_ text: String, context: ChannelHandlerContext) {
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: nextMask(), data: context.channel.allocator.buffer(string: text))
        context.write(wrapOutboundOut(frame), promise: nil)
    }

    private func nextMask() -> WebSocketMaskingKey {
        WebSocketMaskingKey.random(using: &masks)
    }
}
