import CapstanCore
import Foundation
import Testing

@testable import CapstanServer

@Suite("Hand-written version JSON")
struct ConfigVersionInfoJSONTests {
    @Test(arguments: ["", "plain", "quote \" back\\slash / slash", "tab\tnew\nline\r\u{1}control", "ünïcödé 🚀"])
    func matchesJSONEncoderByteForByte(_ text: String) throws {
        let info = ConfigVersionInfo(
            key: "prod/a/b.yaml", revision: 42, version: 7, action: .put, format: .yaml, size: 12,
            sha256: String(repeating: "ab", count: 32), author: text, comment: text,
            time: Date(timeIntervalSince1970: 1_795_000_000.75))
        let expected = String(decoding: try HTTPHelpers.encoder.encode(info), as: UTF8.self)
        #expect(info.encodedJSON() == expected)
    }
}
