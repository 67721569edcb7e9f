import Testing

@testable import CapstanCore

@Suite struct TOMLParserTests {
    @Test func convertsTablesArraysAndScalars() throws {
        let content = """
            title = "capstan"
            port = 8080
            ratio = 0.5
            enabled = true
            tags = ["a", 1]

            [server]
            host = "localhost"

            [[replicas]]
            name = "r1"
            """
        #expect(try ConfigFormat.toml.parse(content) == .object([
            "title": .string("capstan"), "port": .int(8080), "ratio": .double(0.5), "enabled": .bool(true),
            "tags": .array([.string("a"), .int(1)]), "server": .object(["host": .string("localhost")]),
            "replicas": .array([.object(["name": .string("r1")])]),
        ]))
    }

    @Test func turnsDatesAndTimesIntoStrings() throws {
        let content = """
            offset = 1979-05-27T07:32:00-08:00
            utc = 1979-05-27T07:32:00Z
            local = 1979-05-27T07:32:00.25
            date = 1979-05-27
            time = 07:32:00.5
            """
        #expect(try ConfigFormat.toml.parse(content) == .object([
            "offset": .string("1979-05-27T07:32:00-08:00"), "utc": .string("1979-05-27T07:32:00Z"),
            "local": .string("1979-05-27T07:32:00.25"), "date": .string("1979-05-27"), "time": .string("07:32:00.5"),
        ]))
    }

    @Test func reportsAnUnfinishedArrayAtTheLineWhereItBreaks() {
        let error = contentError(.toml, "a = 1\nb = [1,\nc=")
        #expect(error?.code == .invalidContent)
        #expect(error?.message.hasPrefix("invalid TOML: ") == true)
        #expect(error?.line == 3)
        #expect(error?.column == 1)
    }

    @Test func reportsRedefinedKeys() {
        let error = contentError(.toml, "a = 1\na = 2\n")
        #expect(error?.message.contains("cannot redefine existing integer 'a'") == true)
        #expect(error?.line == 2)
        #expect(error?.column == 5)
    }

    @Test func refusesNULInsteadOfTruncating() {
        let error = contentError(.toml, "a = 1\nb = \"x\u{0}\"\nc = [")
        #expect(error?.message == "invalid TOML: NUL character (U+0000)")
        #expect(error?.line == 2)
        #expect(error?.column == 7)
    }
}
