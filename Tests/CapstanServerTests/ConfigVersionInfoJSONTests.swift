import CapstanCore
import Crypto
import Foundation
import Testing

@testable import CapstanServer

/// Texts that exercise every escape JSON has: each control character, quote, backslash, slash,
/// and characters outside ASCII (including line and paragraph separators).
private let awkwardTexts: [String] = [
    "", "plain", "quote \" back\\slash / slash", "tab\tnew\nline\r\u{1}control", "ünïcödé 🚀",
    String(String.UnicodeScalarView((0..<0x80).compactMap(Unicode.Scalar.init))),
    "\u{7F}\u{80}\u{2028}\u{2029}\u{FEFF}\u{FFFD}", "\u{8}\u{C}\u{1F}\"\\",
]

@Suite("Hand-written JSON")
struct ConfigVersionInfoJSONTests {
    @Test(arguments: awkwardTexts)
    func versionJSONMatchesJSONEncoderByteForByte(_ text: String) throws {
        let info = ConfigVersionInfo(
            key: "prod/a/b.yaml", revision: 42, version: 7, action: .put, format: .yaml, size: 12,
            sha256: String(repeating: "ab", count: 32), author: text, comment: text,
            time: Date(timeIntervalSince1970: 1_795_000_000.75))
        let expected = String(decoding: try HTTPHelpers.encoder.encode(info), as: UTF8.self)
        #expect(String(decoding: info.encodedJSON(), as: UTF8.self) == expected)
    }

    /// The optional fields and times from the epoch's first second to a leap day far ahead.
    @Test(arguments: [0, 951_782_400.5, 1_795_000_000.999, 32_503_680_000])
    func versionJSONWithRolloutAndSecretMatchesJSONEncoder(_ seconds: Double) throws {
        let info = ConfigVersionInfo(
            key: "prod/a/b.yaml", revision: 1, version: 1, action: .delete, format: .text, size: 0,
            sha256: String(repeating: "0", count: 64), author: "ops", comment: "", time: Date(timeIntervalSince1970: seconds),
            secret: true, rollout: "canary-\"1\"")
        let expected = String(decoding: try HTTPHelpers.encoder.encode(info), as: UTF8.self)
        #expect(String(decoding: info.encodedJSON(), as: UTF8.self) == expected)
    }

    /// The audit log hashes the hand-written JSON; `audit verify` and anyone checking the chain
    /// with a JSON library must get the same bytes.
    @Test(arguments: awkwardTexts)
    func auditEntryJSONMatchesJSONEncoderByteForByte(_ text: String) throws {
        for withOptionals in [true, false] {
            let entry = AuditEntry(
                sequence: 9_000_000_000, time: "2026-11-22T06:00:00.123Z", actorKind: .token, actorID: text, actorDescription: text,
                action: "config.write", method: "PUT", resource: "/v1/config/prod/" + text, client: text, status: 201,
                outcome: "allowed", revisionBefore: withOptionals ? 41 : nil, revisionAfter: withOptionals ? -1 : nil,
                contentHash: withOptionals ? text : nil, previousHash: String(repeating: "0", count: 64), hash: text)
            let expected = String(decoding: try AuditLog.encoder.encode(entry), as: UTF8.self)
            #expect(String(decoding: AuditLog.json(entry), as: UTF8.self) == expected)
        }
    }

    /// An entry is hashed and stored from one encoding, split around the hash's value: the hash
    /// must still be SHA-256 of the JSON with `hash` empty, and the stored bytes that JSON with it filled.
    @Test(arguments: awkwardTexts)
    func sealedEntryIsTheHashOfItsJSONWithoutTheHash(_ text: String) throws {
        var entry = AuditEntry(
            sequence: 12, time: "2026-11-22T06:00:00.123Z", actorKind: .node, actorID: text, actorDescription: "", action: "agent.enroll",
            method: "POST", resource: "/v1/agent/" + text, client: "127.0.0.1", status: 200, outcome: "allowed", revisionBefore: nil,
            revisionAfter: 7, contentHash: text, previousHash: String(repeating: "1", count: 64), hash: "")
        let expectedHash = ConfigRecord.hex(SHA256.hash(data: try AuditLog.encoder.encode(entry)))
        let (hash, stored) = AuditLog.sealed(entry)
        #expect(hash == expectedHash)
        entry.hash = expectedHash
        #expect(stored == (try AuditLog.encoder.encode(entry)))
    }

    /// The chain's head is written by hand with every batch of entries, and reads back as the
    /// record coder's encoding does. (Not compared byte for byte: Foundation's encoder on Linux
    /// writes keys in an order that changes from one process to the next.)
    @Test func auditHeadMatchesTheRecordCoder() throws {
        let head = AuditLog.Head(sequence: 9_000_000_001, hash: String(repeating: "ab", count: 32) + "\"\\\u{1}")
        let decoded = try RecordCoding.decoder.decode(AuditLog.Head.self, from: head.encoded)
        #expect(decoded.sequence == head.sequence)
        #expect(decoded.hash == head.hash)
        let handWritten = try JSONSerialization.jsonObject(with: head.encoded) as? NSDictionary
        let coded = try JSONSerialization.jsonObject(with: try RecordCoding.encoder.encode(head)) as? NSDictionary
        #expect(handWritten != nil && handWritten == coded)
    }
}
