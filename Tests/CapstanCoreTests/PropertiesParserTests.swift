import Testing

@testable import CapstanCore

@Suite struct PropertiesParserTests {
    @Test func readsAllSeparatorsAndKeepsDottedKeysFlat() throws {
        let content = """
            # comment
            ! another comment
            server.port=8080
            server.host : localhost
            name   Capstan
            empty=
            bare
              indented = yes
            """
        #expect(try ConfigFormat.properties.parse(content) == .object([
            "server.port": .string("8080"), "server.host": .string("localhost"), "name": .string("Capstan"),
            "empty": .string(""), "bare": .string(""), "indented": .string("yes"),
        ]))
    }

    @Test func joinsContinuedLinesAndResolvesEscapes() throws {
        let content = "list = a,\\\n       b,\\\r\n  c\nkey\\ with\\=odd\\:chars = \\t\\u00e9\\ud83d\\ude00\\q\r\nlast=v"
        #expect(try ConfigFormat.properties.parse(content) == .object([
            "list": .string("a,b,c"), "key with=odd:chars": .string("\té😀q"), "last": .string("v"),
        ]))
    }

    @Test func aCommentDoesNotContinue() throws {
        #expect(try ConfigFormat.properties.parse("# note \\\na=1") == .object(["a": .string("1")]))
    }

    @Test func laterKeysWin() throws {
        #expect(try ConfigFormat.properties.parse("a=1\na=2") == .object(["a": .string("2")]))
    }

    @Test func reportsAMalformedUnicodeEscape() {
        let error = contentError(.properties, "a=\\u12G4")
        #expect(error?.code == .invalidContent)
        #expect(error?.message == #"invalid properties: malformed \uXXXX escape "\u12G4""#)
        #expect(error?.line == 1)
        #expect(error?.column == 3)

        let truncated = contentError(.properties, "x=1\ny = ab\\u12")
        #expect(truncated?.line == 2)
        #expect(truncated?.column == 7)
    }

    @Test func reportsAnUnpairedSurrogate() {
        let error = contentError(.properties, "a=\\ud800x")
        #expect(error?.message == #"invalid properties: unpaired UTF-16 surrogate "\ud800""#)
        #expect(error?.column == 3)
    }

    @Test func reportsAValueWithoutAKey() {
        let error = contentError(.properties, "a=1\n\n   = orphan")
        #expect(error?.message == #"invalid properties: missing key before "=""#)
        #expect(error?.line == 3)
        #expect(error?.column == 4)

        let colon = contentError(.properties, ":x")
        #expect(colon?.line == 1)
        #expect(colon?.column == 1)
    }
}
