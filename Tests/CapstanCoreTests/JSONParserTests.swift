import Testing

@testable import CapstanCore

@Suite struct JSONParserTests {
    @Test func parsesEveryKindOfValue() throws {
        let content = #"""
            {"null": null, "t": true, "f": false, "int": -42, "big": 9223372036854775808,
             "double": 1.5e3, "s": "a\"b\\c\/\b\f\n\r\t\u00e9\ud83d\ude00", "arr": [1, [], {}],
             "obj": {"k": "v"}}
            """#
        let value = try ConfigFormat.json.parse(content)
        #expect(value == .object([
            "null": .null, "t": .bool(true), "f": .bool(false), "int": .int(-42),
            "big": .double(9223372036854775808), "double": .double(1500),
            "s": .string("a\"b\\c/\u{8}\u{c}\n\r\té😀"), "arr": .array([.int(1), .array([]), .object([:])]),
            "obj": .object(["k": .string("v")]),
        ]))
        #expect(try ConfigFormat.json.parse(" 7 ") == .int(7))
        #expect(try ConfigFormat.json.parse("\u{FEFF}\"bom\"") == .string("bom"))
    }

    @Test(arguments: [
        (#"{"a": 1,}"#, 1, 9, "trailing comma before \"}\""),
        ("[1, 2,]", 1, 7, "trailing comma before \"]\""),
        ("{\n  \"a\": \"abc\n}", 2, 8, "unterminated string: a line break must be written \\n inside a string"),
        (#"{"a": "abc"#, 1, 7, "unterminated string"),
        (#"["a\x"]"#, 1, 4, #"invalid escape "\x" in string"#),
        (#"["\u12G4"]"#, 1, 3, #"invalid unicode escape "\u12G4": expected 4 hex digits"#),
        (#"["\ud800"]"#, 1, 3, #"unpaired UTF-16 surrogate \uD800 in string"#),
        ("[\"a\tb\"]", 1, 4, "control character U+0009 in string: escape it"),
        ("[01]", 1, 2, #"invalid number "01": leading zeros are not allowed"#),
        ("[1.]", 1, 2, #"invalid number "1.": expected a digit after ".""#),
        ("[-]", 1, 2, #"invalid number "-": expected a digit after "-""#),
        ("[1e+]", 1, 2, #"invalid number "1e+": expected a digit in the exponent"#),
        ("[1e999]", 1, 2, #"number "1e999" is out of range"#),
        ("[+1]", 1, 2, #"unexpected "+": expected a value"#),
        ("{'a': 1}", 1, 2, #"unexpected "'": expected a string key"#),
        ("[tru]", 1, 2, #"invalid literal "tru": expected true, false or null"#),
        ("{\"a\" 1}", 1, 6, #"unexpected "1": expected ":" after key "a""#),
        ("[1 2]", 1, 4, #"unexpected "2": expected "," or "]" in array"#),
        ("{\"a\": 1 \"b\": 2}", 1, 9, #"unexpected "\"": expected "," or "}" in object"#),
        ("{\"a\": 1}\n  x", 2, 3, #"unexpected "x" after the top-level value"#),
        ("{\"a\": 1, \"a\": 2}", 1, 10, #"duplicate key "a""#),
        ("[1,\n", 2, 1, "unexpected end of input: expected a value"),
        ("  ", 1, 3, "unexpected end of input: expected a value"),
        ("", 1, 1, "empty document: expected a value"),
        ("[\"é\", é]", 1, 7, #"unexpected "é": expected a value"#),
    ])
    func reportsTheFirstErrorWithItsPosition(_ content: String, _ line: Int, _ column: Int, _ reason: String) {
        let error = contentError(.json, content)
        #expect(error?.code == .invalidContent)
        #expect(error?.message == "invalid JSON: \(reason)")
        #expect(error?.line == line)
        #expect(error?.column == column)
    }

    @Test func limitsNestingDepth() throws {
        let deepest = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        #expect(throws: Never.self) { try ConfigFormat.json.parse(deepest) }
        let error = contentError(.json, "[" + deepest + "]")
        #expect(error?.message == "invalid JSON: nesting deeper than 512 levels")
        #expect(error?.line == 1)
        #expect(error?.column == 513)
    }

    @Test func countsLinesAcrossCRLF() {
        let error = contentError(.json, "{\r\n\"a\": 1,\r\n}")
        #expect(error?.line == 3)
        #expect(error?.column == 1)
    }
}
