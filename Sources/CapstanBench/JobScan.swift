import CapstanCore
import Foundation

/// What a simulated agent reads of a `job` message, and the result it answers with.
///
/// Like `TemplatesScan`, it picks the `"id":"…"` and `"attempt":N` fields out of the text instead
/// of decoding the JSON, so that the simulator, which shares the cores with the server, does
/// little per message. Neither key occurs anywhere else in a job message, and a key cannot occur
/// inside a string value (its quotes would be escaped there); a message where either is missing,
/// or whose id holds an escape, is decoded in full.
enum JobScan {
    /// The job and attempt a `job` message starts.
    struct Start: Sendable, Equatable {
        var id: String
        var attempt: Int
    }

    private static let quote = UInt8(ascii: "\"")
    private static let backslash = UInt8(ascii: "\\")

    /// The job a message starts, or nil when it is not a `job` message.
    static func start(in text: String) -> Start? {
        guard text.containsBytes(of: #""type":"job""#) else { return nil }
        var text = text
        let scanned = text.withUTF8 { bytes -> Start? in
            guard let idStart = position(after: Array(#""id":""#.utf8), in: bytes),
                let attemptStart = position(after: Array(#""attempt":"#.utf8), in: bytes)
            else { return nil }
            var idEnd = idStart
            while idEnd < bytes.count, bytes[idEnd] != quote {
                if bytes[idEnd] == backslash { return nil }
                idEnd += 1
            }
            var attempt = 0
            var index = attemptStart
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                attempt = attempt * 10 + Int(bytes[index] - UInt8(ascii: "0"))
                index += 1
            }
            guard idEnd < bytes.count, index > attemptStart else { return nil }
            return Start(id: String(decoding: UnsafeBufferPointer(rebasing: bytes[idStart..<idEnd]), as: UTF8.self), attempt: attempt)
        }
        if let scanned { return scanned }
        guard let job = (try? AgentMessage.decode(text))?.job else { return nil }
        return Start(id: job.id, attempt: job.attempt)
    }

    /// A `job_result` for `start`: succeeded, exit code 0, no output, started and ended `now`.
    /// Written out by hand, the same JSON `AgentMessage.encode` gives, without an encoder per
    /// message; an id that would need escaping goes through the encoder.
    static func succeeded(_ start: Start, now: Date = Date()) throws -> String {
        guard start.id.utf8.allSatisfy({ $0 != quote && $0 != backslash && $0 >= 0x20 }) else {
            let result = AgentMessage.JobResult(
                id: start.id, attempt: start.attempt, outcome: .succeeded, exitCode: 0, stdout: "", stderr: "", stdoutTruncated: false,
                stderrTruncated: false, startedAt: now, endedAt: now, error: nil)
            return try AgentMessage.encode(AgentMessage(type: .jobResult, jobResult: result))
        }
        let milliseconds = Int64((now.timeIntervalSince1970 * 1000).rounded())
        return #"{"v":\#(AgentMessage.currentVersion),"type":"job_result","jobResult":{"id":"\#(start.id)","attempt":\#(start.attempt),"#
            + #""outcome":"succeeded","exitCode":0,"stdout":"","stderr":"","stdoutTruncated":false,"stderrTruncated":false,"#
            + #""startedAt":\#(milliseconds),"endedAt":\#(milliseconds)}}"#
    }

    /// The index just past the first occurrence of `key` in `bytes`.
    private static func position(after key: [UInt8], in bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        var index = 0
        while index + key.count <= bytes.count {
            if bytes[index] == key[0], bytes[index..<index + key.count].elementsEqual(key) { return index + key.count }
            index += 1
        }
        return nil
    }
}
