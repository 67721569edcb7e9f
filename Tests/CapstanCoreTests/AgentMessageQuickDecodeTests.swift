import CapstanCore
import Foundation
import Testing

@Suite("Agent message fast path")
struct AgentMessageQuickDecodeTests {
    static func report(_ template: String, _ revision: Int64, _ state: TemplateState, error: String? = nil, time: Date) -> AgentMessage {
        AgentMessage(type: .report, report: TemplateReport(template: template, revision: revision, state: state, error: error, time: time))
    }

    /// Reads `text` both ways: the fast path must answer nil or exactly what the decoder answers.
    static func agree(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> AgentMessage? {
        let quick = AgentMessage.quickDecode(text)
        if let quick {
            #expect(quick == (try? AgentMessage.decode(text)), "\(text)", sourceLocation: sourceLocation)
        }
        return quick
    }

    @Test func heartbeatsAndReportsAsAgentsWriteThemTakeTheFastPathAndReadAsTheDecoderReadsThem() throws {
        var generator = SystemRandomNumberGenerator()
        var messages: [AgentMessage] = [
            AgentMessage(type: .heartbeat, heartbeat: .init(sequence: 0)),
            AgentMessage(type: .heartbeat, heartbeat: .init(sequence: 1), version: 1),
            AgentMessage(type: .heartbeat, heartbeat: .init(sequence: 123_456_789_012)),
            Self.report("web", 12, .applied, time: Date(timeIntervalSince1970: 0)),
            Self.report("nginx-conf", 0, .pending, time: Date(timeIntervalSince1970: 1_765_000_000.123)),
            Self.report("ünïcode", 9, .failed, time: Date(timeIntervalSince1970: 1_765_000_000)),
        ]
        for _ in 0..<500 {
            // Whole milliseconds, as the encoding keeps them (finer digits are the encoder's to round).
            let time = Date(timeIntervalSince1970: Double(Int64.random(in: 0..<4_000_000_000_000, using: &generator)) / 1000)
            let state = [TemplateState.applied, .failed, .pending].randomElement(using: &generator)!
            messages.append(Self.report("t\(UInt32.random(in: 0...UInt32.max))", Int64.random(in: 0..<(1 << 53)), state, time: time))
            messages.append(AgentMessage(type: .heartbeat, heartbeat: .init(sequence: Int64.random(in: 0..<(1 << 53)))))
        }
        for message in messages {
            let text = try AgentMessage.encode(message)
            let quick = try #require(Self.agree(text), "not on the fast path: \(text)")
            // Equal to the message sent, but for the time's digits beyond a millisecond's fraction.
            var sent = message
            sent.report?.time = quick.report?.time ?? Date()
            #expect(quick == sent, "\(text)")
            // Within 10 µs: a double holds a time near 2096 to about 1 µs, far below the millisecond kept.
            // (Reports only: a heartbeat has no time, and two `Date()`s as stand-ins differ under load.)
            if let read = quick.report?.time, let written = message.report?.time {
                #expect(abs(read.timeIntervalSince(written)) < 1e-5)
            }
        }
    }

    @Test func otherMessagesAndReportsWithAnErrorGoToTheDecoder() throws {
        let others = [
            Self.report("web", 3, .failed, error: "render failed:\nline 2", time: Date(timeIntervalSince1970: 1_765_000_000.5)),
            Self.report("web", 3, .failed, error: "", time: Date(timeIntervalSince1970: 1_765_000_000.5)),
            AgentMessage(type: .error, error: "heartbeat"),
            AgentMessage(
                type: .jobOutput, jobOutput: .init(id: "j", attempt: 1, stream: .stdout, text: #"{"v":2,"type":"heartbeat","heartbeat":{"sequence":1}}"#)),
        ]
        for message in others {
            let text = try AgentMessage.encode(message)
            #expect(AgentMessage.quickDecode(text) == nil, "\(text)")
            #expect(try AgentMessage.decode(text) == message)
        }
    }

    @Test(arguments: [
        // Not JSON, or not whole.
        "", "{", "heartbeat", #"{"v":2,"type":"heartbeat","heartbeat":{"sequence":1}"#,
        #"{"v":2,"type":"heartbeat","heartbeat":{"sequence":1}}}"#, #"{"v":2,"type":"heartbeat","heartbeat":{"sequence":}}"#,
        #"{"v":2,"type":"heartbeat","heartbeat":{"sequence":1}} "#, #"{"v":2,"type":"heartbeat","heartbeat":{"sequence":1}}x"#,
        #"{"v":2,"type":"report","report":{"template":"web","revision":1,"state":"applied","time":5"#,
        #"{"v":2,"type":"report","report":{"template":"web,"revision":1,"state":"applied","time":5}}"#,
        // Valid JSON in another shape: blanks, key order, duplicates, escapes, other numbers.
        #"{ "v":2,"type":"heartbeat","heartbeat":{"sequence":1}}"#, #"{"v":2,"type":"heartbeat","heartbeat":{"sequence":1} }"#,
        #"{"v":2,"type":"heartbeat","heartbeat":{"sequence":1,"sequence":2}}"#, #"{"v":2,"type":"heartbeat"}"#,
        #"{"v":2,"type":"heartbeat","heartbeat":{"sequence":1},"report":{"template":"web","revision":1,"state":"applied","time":5}}"#,
        #"{"v":2,"type":"report","report":{"template":"web","revision":1,"state":"applied"}}"#, #"{}"#, #"{"v":2,}"#,
        #"{"v":2,"type":"heartbeat","heartbeat":{"sequence":1},"v":3}"#, #"{"v":2,"type":"heart\u0062eat","heartbeat":{"sequence":1}}"#,
        #"{"v":2,"type":"heartbeat","heartbeat":{"sequence":01}}"#, #"{"v":2,"type":"heartbeat","heartbeat":{"sequence":-1}}"#,
        #"{"v":2,"type":"heartbeat","heartbeat":{"sequence":1.0}}"#, #"{"v":2,"type":"heartbeat","heartbeat":{"sequence":1e3}}"#,
        #"{"v":2,"type":"heartbeat","heartbeat":{"sequence":12345678901234567890}}"#, #"{"v":2.5,"type":"heartbeat","heartbeat":{"sequence":1}}"#,
        #"{"v":2,"type":"report","report":{"template":"w\"eb","revision":1,"state":"applied","time":5}}"#,
        #"{"v":2,"type":"report","report":{"template":"web","revision":1,"state":"applied","time":5e3}}"#,
        #"{"v":2,"type":"report","report":{"template":"web","revision":1,"state":"applied","time":-5}}"#,
        #"{"v":2,"type":"report","report":{"template":"web","revision":1,"state":"applied","time":5.}}"#,
        #"{"v":2,"type":"report","report":{"template":"web","revision":1,"state":"applied","time":.5}}"#,
        #"{"v":2,"type":"report","report":{"template":"web","revision":1,"state":"applied","time":05}}"#,
        #"{"v":2,"type":"report","report":{"template":"web","revision":1,"state":"done","time":5}}"#,
        #"{"v":2,"type":"report","report":{"template":"web","revision":"1","state":"applied","time":5}}"#,
        #"{"v":2,"type":"report","report":{"template":"web","revision":1,"state":"applied","time":5,"error":"x"}}"#,
        #"{"v":2,"type":"report","report":{"template":"web","revision":1,"state":"applied","error":null,"time":5}}"#,
        "{\"v\":2,\"type\":\"report\",\"report\":{\"template\":\"w\teb\",\"revision\":1,\"state\":\"applied\",\"time\":5}}",
        // The right shape under another type.
        #"{"v":2,"type":"hello","heartbeat":{"sequence":1}}"#, #"{"v":2,"type":"report","heartbeat":{"sequence":1}}"#,
    ])
    func malformedOrUnusualTextIsLeftToTheDecoder(text: String) {
        #expect(AgentMessage.quickDecode(text) == nil)
    }

    @Test func keysAreReadInAnyOrder() throws {
        let texts = [
            #"{"type":"heartbeat","v":2,"heartbeat":{"sequence":1}}"#, #"{"heartbeat":{"sequence":1},"type":"heartbeat","v":2}"#,
            #"{"report":{"time":5,"state":"failed","revision":3,"template":"web"},"v":1,"type":"report"}"#,
            #"{"type":"report","report":{"revision":3,"template":"web","time":5.5,"state":"applied"},"v":2}"#,
        ]
        for text in texts {
            #expect(Self.agree(text) != nil, "\(text)")
        }
    }

    @Test func theSmallestPlainFormsAreRead() throws {
        let heartbeat = try #require(Self.agree(#"{"v":0,"type":"heartbeat","heartbeat":{"sequence":0}}"#))
        #expect(heartbeat.heartbeat?.sequence == 0)
        let report = try #require(Self.agree(#"{"v":2,"type":"report","report":{"template":"","revision":0,"state":"pending","time":0.25}}"#))
        #expect(report.report?.time == Date(timeIntervalSince1970: 0.00025))
    }
}
