import Foundation
import Testing

@testable import CapstanCore

@Suite struct ConfigValueTests {
    @Test func mergesObjectsDeeplyAndLetsTheOtherSideWin() {
        let base: ConfigValue = .object([
            "server": .object(["host": .string("localhost"), "port": .int(80)]),
            "tags": .array([.string("a")]),
            "debug": .bool(false),
        ])
        let overlay: ConfigValue = .object([
            "server": .object(["port": .int(8080)]),
            "tags": .array([.string("b")]),
            "extra": .null,
        ])
        #expect(base.merging(overlay) == .object([
            "server": .object(["host": .string("localhost"), "port": .int(8080)]),
            "tags": .array([.string("b")]),
            "debug": .bool(false),
            "extra": .null,
        ]))
        #expect(ConfigValue.int(1).merging(.object([:])) == .object([:]))
        #expect(ConfigValue.object(["a": .int(1)]).merging(.string("x")) == .string("x"))
    }

    @Test func encodesAsPlainJSON() throws {
        let value: ConfigValue = .object(["a": .array([.null, .bool(true), .int(-3), .double(2.5), .string("s")])])
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = String(decoding: try encoder.encode(value), as: UTF8.self)
        #expect(json == #"{"a":[null,true,-3,2.5,"s"]}"#)
    }

    @Test func decodesWhatItEncodes() throws {
        let value: ConfigValue = .object([
            "n": .null, "b": .bool(false), "i": .int(Int64.max), "d": .double(0.25), "s": .string("x"),
            "a": .array([.int(1), .object([:])]), "o": .object(["k": .string("v")]),
        ])
        let data = try JSONEncoder().encode(value)
        #expect(try JSONDecoder().decode(ConfigValue.self, from: data) == value)
    }

    @Test func agreesWithTheJSONParser() throws {
        let text = #"{"a": [1, 2.5, "x", true, null], "b": {"c": {}}}"#
        let decoded = try JSONDecoder().decode(ConfigValue.self, from: Data(text.utf8))
        #expect(decoded == (try ConfigFormat.json.parse(text)))
    }
}
