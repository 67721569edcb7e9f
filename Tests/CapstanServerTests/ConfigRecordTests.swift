import CapstanCore
import Foundation
import Testing

@testable import CapstanServer

/// The stored form of a config version: records written by earlier releases must read back, and
/// new ones must keep their layout byte for byte.
@Suite("Config record")
struct ConfigRecordTests {
    @Test func aPlainRecordKeepsItsLayout() throws {
        let record = ConfigRecord(
            sequence: 7, action: .put, format: .yaml, content: Data("a: 1\n".utf8), author: "ops\tteam", comment: "line\nbreak \\ done",
            time: Date(timeIntervalSince1970: 1_795_000_000.1234))
        let sha = record.header.sha256
        let expected = "capstan-config/1\t7\tput\tyaml\t5\t\(sha)\t1795000000123\tops\\tteam\tline\\nbreak \\\\ done\na: 1\n"
        #expect(String(decoding: try record.encoded(), as: UTF8.self) == expected)
    }

    @Test func aSecretRecordCarriesItsDataKey() throws {
        let record = ConfigRecord(
            sequence: 1, action: .put, format: .text, content: Data([0, 1, 2]), author: "ünïcödé", comment: "",
            time: Date(timeIntervalSince1970: 0), dataKeyID: "dk-1")
        let encoded = try record.encoded()
        let header = String(decoding: encoded.prefix(while: { $0 != 0x0A }), as: UTF8.self)
        #expect(header == "capstan-config/2\t1\tput\ttext\t3\t\(record.header.sha256)\t0\tünïcödé\t\tdk-1")
        #expect(encoded.suffix(3) == Data([0, 1, 2]))
    }

    @Test(arguments: ["", "plain", "tab\there", "cr\r lf\n back\\slash", "\\t literal", "🚀\u{2028}"])
    func recordsReadBackAsWritten(_ text: String) throws {
        for dataKeyID in [nil, "dk-9"] as [String?] {
            let record = ConfigRecord(
                sequence: 42, action: .delete, format: .json, content: Data(text.utf8), author: text, comment: text,
                time: Date(timeIntervalSince1970: 1_700_000_000.5), dataKeyID: dataKeyID)
            let decoded = try ConfigRecord.decode(try record.encoded())
            #expect(decoded.header.author == text)
            #expect(decoded.header.comment == text)
            #expect(decoded.header.sequence == 42)
            #expect(decoded.header.action == .delete)
            #expect(decoded.header.format == .json)
            #expect(decoded.header.dataKeyID == dataKeyID)
            #expect(decoded.header.time == Date(timeIntervalSince1970: 1_700_000_000.5))
            #expect(decoded.content == Data(text.utf8))
        }
    }
}
