import Foundation

extension AgentMessage {
    /// The two messages an agent sends most, heartbeats and template reports, read without
    /// `JSONDecoder` when their text is in the plain form `encode` writes, keys in any order:
    ///
    ///     {"v":2,"type":"heartbeat","heartbeat":{"sequence":7}}
    ///     {"report":{"template":"web","revision":12,"state":"applied","time":1765000000123.5},"type":"report","v":2}
    ///
    /// Anything else answers nil and goes to `decode`: other types or fields, blanks, a key
    /// twice, escapes in a string, a report's `error`, numbers out of the plain forms. What is
    /// answered is what `decode` answers for the same text (a test compares the two), so the fast
    /// path changes the cost of these messages, never their meaning.
    public static func quickDecode(_ text: String) -> AgentMessage? {
        var text = text
        return text.withUTF8 { quickDecode(utf8: $0) }
    }

    /// `quickDecode(_:)` on a message's UTF-8 bytes, as they came off the connection.
    public static func quickDecode(utf8 bytes: UnsafeBufferPointer<UInt8>) -> AgentMessage? {
        var cursor = QuickCursor(bytes: bytes)
        var version: Int64?
        var type: QuickKind?
        var sequence: Int64?
        var report: TemplateReport?
        let read = cursor.object { cursor, key in
            switch key {
            case "v" where version == nil:
                version = cursor.integer()
                return version != nil
            case "type" where type == nil:
                type = cursor.plainString().flatMap(QuickKind.init(kind:))
                return type != nil
            case "heartbeat" where sequence == nil && report == nil:
                sequence = cursor.heartbeat()
                return sequence != nil
            case "report" where sequence == nil && report == nil:
                report = cursor.report()
                return report != nil
            default:
                return false
            }
        }
        guard read, cursor.atEnd, let version, let type else { return nil }
        switch type {
        case .heartbeat:
            guard let sequence else { return nil }
            return AgentMessage(type: .heartbeat, heartbeat: Heartbeat(sequence: sequence), version: Int(version))
        case .report:
            guard let report else { return nil }
            return AgentMessage(type: .report, report: report, version: Int(version))
        }
    }
}

/// The message types the fast path reads.
private enum QuickKind {
    case heartbeat, report

    init?(kind: String) {
        switch kind {
        case "heartbeat": self = .heartbeat
        case "report": self = .report
        default: return nil
        }
    }
}

/// Reads a message's bytes left to right, accepting only the plainest JSON forms.
private struct QuickCursor {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    var atEnd: Bool { index == bytes.count }

    /// Skips `byte` if it is next.
    mutating func take(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    /// An object without blanks: `{`, then each `"key":` handed to `value` (which reads the value
    /// and answers whether it could), separated by commas, then `}`. At least one key.
    mutating func object(_ value: (inout QuickCursor, String) -> Bool) -> Bool {
        guard take(UInt8(ascii: "{")) else { return false }
        repeat {
            guard let key = plainString(), take(UInt8(ascii: ":")), value(&self, key) else { return false }
        } while take(UInt8(ascii: ","))
        return take(UInt8(ascii: "}"))
    }

    /// `{"sequence":N}`.
    mutating func heartbeat() -> Int64? {
        var sequence: Int64?
        let read = object { cursor, key in
            guard key == "sequence", sequence == nil else { return false }
            sequence = cursor.integer()
            return sequence != nil
        }
        return read ? sequence : nil
    }

    /// A report without an error, its four fields in any order.
    mutating func report() -> TemplateReport? {
        var template: String?
        var revision: Int64?
        var state: TemplateState?
        var milliseconds: Double?
        let read = object { cursor, key in
            switch key {
            case "template" where template == nil:
                template = cursor.plainString()
                return template != nil
            case "revision" where revision == nil:
                revision = cursor.integer()
                return revision != nil
            case "state" where state == nil:
                state = cursor.plainString().flatMap(TemplateState.init(rawValue:))
                return state != nil
            case "time" where milliseconds == nil:
                milliseconds = cursor.number()
                return milliseconds != nil
            default:
                return false
            }
        }
        guard read, let template, let revision, let state, let milliseconds else { return nil }
        // As JSONDecoder's millisecondsSince1970 strategy reads a date.
        return TemplateReport(
            template: template, revision: revision, state: state, error: nil, time: Date(timeIntervalSince1970: milliseconds / 1000))
    }

    private func digit(at position: Int) -> Bool {
        position < bytes.count && bytes[position] >= UInt8(ascii: "0") && bytes[position] <= UInt8(ascii: "9")
    }

    /// A non-negative integer without leading zeros, at most 18 digits (no overflow possible).
    mutating func integer() -> Int64? {
        let start = index
        var value: Int64 = 0
        while digit(at: index), index - start < 18 {
            value = value * 10 + Int64(bytes[index] - UInt8(ascii: "0"))
            index += 1
        }
        let length = index - start
        guard length > 0, !digit(at: index), length == 1 || bytes[start] != UInt8(ascii: "0") else { return nil }
        return value
    }

    /// A non-negative number: an integer part without leading zeros and an optional fraction;
    /// no sign and no exponent.
    mutating func number() -> Double? {
        let start = index
        guard integer() != nil else { return nil }
        if take(UInt8(ascii: ".")) {
            let fraction = index
            while digit(at: index) { index += 1 }
            guard index > fraction else { return nil }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") { return nil }
        return Double(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self))
    }

    /// A string without escapes or control characters.
    mutating func plainString() -> String? {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
        let start = index + 1
        var end = start
        while end < bytes.count, bytes[end] != UInt8(ascii: "\"") {
            if bytes[end] == UInt8(ascii: "\\") || bytes[end] < 0x20 { return nil }
            end += 1
        }
        guard end < bytes.count else { return nil }
        index = end + 1
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
    }
}
