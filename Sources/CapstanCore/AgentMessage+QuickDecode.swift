import Foundation

extension AgentMessage {
    /// The two messages an agent sends most, heartbeats and template reports, read without
    /// `JSONDecoder` when their text has exactly the shape `encode` writes them in:
    ///
    ///     {"v":2,"type":"heartbeat","heartbeat":{"sequence":7}}
    ///     {"v":2,"type":"report","report":{"template":"web","revision":12,"state":"applied","time":1765000000123.5}}
    ///
    /// Anything else answers nil and goes to `decode`: other types, other key orders, blanks,
    /// escapes in a string, an `error` field, numbers out of the plain forms. What is answered is
    /// what `decode` answers for the same text (a test compares the two), so the fast path
    /// changes the cost of these messages, never their meaning.
    public static func quickDecode(_ text: String) -> AgentMessage? {
        var text = text
        return text.withUTF8 { bytes in
            var cursor = QuickCursor(bytes: bytes)
            guard cursor.take(#"{"v":"#), let version = cursor.integer(), cursor.take(#","type":""#) else { return nil }
            if cursor.take(#"heartbeat","heartbeat":{"sequence":"#) {
                guard let sequence = cursor.integer(), cursor.take("}}"), cursor.atEnd else { return nil }
                return AgentMessage(type: .heartbeat, heartbeat: Heartbeat(sequence: sequence), version: Int(version))
            }
            guard cursor.take(#"report","report":{"template":"#), let template = cursor.plainString(),
                cursor.take(#","revision":"#), let revision = cursor.integer(), cursor.take(#","state":"#),
                let state = cursor.plainString().flatMap(TemplateState.init(rawValue:)), cursor.take(#","time":"#),
                let milliseconds = cursor.number(), cursor.take("}}"), cursor.atEnd
            else { return nil }
            // As JSONDecoder's millisecondsSince1970 strategy reads a date.
            let time = Date(timeIntervalSince1970: milliseconds / 1000)
            let report = TemplateReport(template: template, revision: revision, state: state, error: nil, time: time)
            return AgentMessage(type: .report, report: report, version: Int(version))
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

    /// Skips `literal` if the bytes here are exactly it.
    mutating func take(_ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { return false }
        let literalBytes = UnsafeBufferPointer(start: literal.utf8Start, count: count)
        for offset in 0..<count where bytes[index + offset] != literalBytes[offset] { return false }
        index += count
        return true
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
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
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
