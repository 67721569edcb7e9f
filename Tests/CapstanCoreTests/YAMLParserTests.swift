import Testing

@testable import CapstanCore

@Suite struct YAMLParserTests {
    @Test func resolvesScalarTypes() throws {
        let content = """
            s: hello
            quoted: "42"
            i: 42
            hex: 0x10
            f: 1.5
            b: true
            n: ~
            date: 2001-12-14
            list: [1, two]
            nested:
              k: v
            """
        #expect(try ConfigFormat.yaml.parse(content) == .object([
            "s": .string("hello"), "quoted": .string("42"), "i": .int(42), "hex": .int(16), "f": .double(1.5),
            "b": .bool(true), "n": .null, "date": .string("2001-12-14"), "list": .array([.int(1), .string("two")]),
            "nested": .object(["k": .string("v")]),
        ]))
    }

    @Test func appliesAnchorsAndMergeKeys() throws {
        let content = """
            base: &base {x: 1, y: 2}
            derived:
              <<: *base
              y: 3
            copy: *base
            """
        let value = try ConfigFormat.yaml.parse(content)
        #expect(value == .object([
            "base": .object(["x": .int(1), "y": .int(2)]),
            "derived": .object(["x": .int(1), "y": .int(3)]),
            "copy": .object(["x": .int(1), "y": .int(2)]),
        ]))
    }

    @Test func aDocumentOfOnlyCommentsIsEmpty() throws {
        #expect(try ConfigFormat.yaml.parse("# nothing here\n") == .object([:]))
        #expect(try ConfigFormat.yaml.parse("[1]") == .array([.int(1)]))
    }

    @Test func reportsBadIndentationWithAOneBasedPosition() {
        let error = contentError(.yaml, "a:\n  b: 1\n c: 2\n")
        #expect(error?.code == .invalidContent)
        #expect(error?.message.hasPrefix("invalid YAML: did not find expected key") == true)
        #expect(error?.line == 3)
        #expect(error?.column == 2)
    }

    @Test func refusesASecondDocument() {
        let error = contentError(.yaml, "a: 1\n---\nb: 2\n")
        #expect(error?.message == "invalid YAML: more than one document: a config holds exactly one")
        #expect(error?.line == 2)
        #expect(error?.column == 1)
    }

    @Test func reportsScannerErrors() {
        let error = contentError(.yaml, "a: 'unterminated\n")
        #expect(error?.code == .invalidContent)
        #expect(error?.message.hasPrefix("invalid YAML: found unexpected end of stream") == true)
        #expect(error?.line == 2)
        #expect(error?.column == 1)
    }

    @Test func reportsUnclosedFlowSequences() {
        let error = contentError(.yaml, "a: [1, 2\n")
        #expect(error?.message.hasPrefix("invalid YAML: did not find expected ',' or ']'") == true)
        #expect(error?.line == 2)
    }

    @Test func reportsDuplicateKeys() {
        let error = contentError(.yaml, "x: 0\na: 1\na: 2\n")
        #expect(error?.message == #"invalid YAML: duplicate key "a" in a mapping"#)
        #expect(error?.line == 2)
        #expect(error?.column == 1)
    }

    @Test func reportsUndefinedAliases() {
        let error = contentError(.yaml, "a: 1\nb: *nope\n")
        #expect(error?.message == "invalid YAML: found undefined alias")
        #expect(error?.line == 2)
        #expect(error?.column == 4)
    }

    @Test func reportsControlCharacters() {
        let error = contentError(.yaml, "a: 1\nb: \"x\u{1}\"\n")
        #expect(error?.message == "invalid YAML: control characters are not allowed (found U+0001)")
        #expect(error?.line == 2)
        #expect(error?.column == 6)
    }

    @Test func refusesNonScalarKeys() {
        let error = contentError(.yaml, "? [a, b]\n: 1\n")
        #expect(error?.message == "invalid YAML: mapping keys must be scalars")
        #expect(error?.line == 1)
        #expect(error?.column == 3)
    }
}

@Suite("YAML alias expansion")
struct YAMLAliasBombTests {
    @Test func nestedAliasesAreRefusedQuickly() throws {
        var lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for level in 1...9 {
            let refs = Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ")
            lines.append("a\(level): &a\(level) [\(refs)]")
        }
        let started = ContinuousClock.now
        do {
            _ = try ConfigFormat.yaml.parse(lines.joined(separator: "\n"))
            Issue.record("a billion-laughs document was accepted")
        } catch {
            #expect(error.code == .invalidContent)
            #expect(error.message.contains("aliases expand the document to more than"), "\(error.message)")
        }
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    /// 9^5 values from under 200 bytes: under the old budget (100,000 values whatever the size).
    @Test func aSmallDocumentMayNotExpandToTensOfThousandsOfValues() {
        var lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
        for (name, previous) in [("b", "a"), ("c", "b"), ("d", "c"), ("e", "d")] {
            lines.append("\(name): &\(name) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ", ") + "]")
        }
        let text = lines.joined(separator: "\n") + "\n"
        do {
            _ = try ConfigFormat.yaml.parse(text)
            Issue.record("9^5 values from \(text.utf8.count) bytes were accepted")
        } catch {
            #expect(error.code == .invalidContent)
            #expect(
                error.message
                    == "invalid YAML: aliases expand the document to more than \(text.utf8.count + 10_000) values (at most 10000 more than its text holds)")
            #expect(error.line == 1, "the values the aliases repeat")
        }
    }

    @Test func longStringsRepeatedByAliasesAreBoundedInBytes() {
        let long = String(repeating: "y", count: 64 * 1024)
        let text = "a: &a \(long)\nb: &b [" + Array(repeating: "*a", count: 10).joined(separator: ", ") + "]\nc: ["
            + Array(repeating: "*b", count: 10).joined(separator: ", ") + "]\n"
        #expect {
            _ = try ConfigFormat.yaml.parse(text)
        } throws: { error in
            (error as? CapstanError)?.message.contains("aliases expand the document to more than") == true
                && (error as? CapstanError)?.message.contains("(at most 1MiB more than its text)") == true
        }
    }

    @Test func aLargeDocumentWithoutAliasesIsNotLimited() throws {
        // Plain text holds fewer values and bytes than it has bytes: the budget never binds it.
        let items = Array(repeating: "- 1", count: 50_000).joined(separator: "\n")
        guard case .array(let values) = try ConfigFormat.yaml.parse(items) else {
            Issue.record("not a list")
            return
        }
        #expect(values.count == 50_000)
    }

    @Test func ordinaryAliasesStillWork() throws {
        let value = try ConfigFormat.yaml.parse("base: &b {port: 1}\nprod:\n  <<: *b\n  host: h\n")
        #expect(value == .object(["base": .object(["port": .int(1)]), "prod": .object(["port": .int(1), "host": .string("h")])]))
    }
}
