import Foundation
import Testing

@testable import CapstanCore

@Suite struct ConfigKeyTests {
    @Test func parsesNamespaceAndPath() throws {
        let key = try ConfigKey("prod/order-service/app.yaml")
        #expect(key.namespace == "prod")
        #expect(key.path == "order-service/app.yaml")
        #expect(key.description == "prod/order-service/app.yaml")
        #expect(try ConfigKey(namespace: "prod", path: "order-service/app.yaml") == key)
    }

    @Test(arguments: ["prod/a", "p/A_b-c.9", "prod/..x/.hidden", "prod/a/b/c/d.tar.gz"])
    func acceptsValidKeys(_ string: String) throws {
        #expect(try ConfigKey(string).description == string)
    }

    @Test(arguments: [
        ("", "key is empty: use NAMESPACE/PATH"),
        ("prod", #"key "prod" has no path: use NAMESPACE/PATH"#),
        ("prod/", #"key "prod/" has no path: use NAMESPACE/PATH"#),
        ("/a.yaml", #"key "/a.yaml" starts with "/": use NAMESPACE/PATH"#),
        ("prod//a.yaml", #"key "prod//a.yaml" has an empty segment at position 6"#),
        ("prod/a/", #"key "prod/a/" ends with "/": name a file after it"#),
        ("prod/../x", #"key "prod/../x" has a ".." segment"#),
        ("prod/a/./x", #"key "prod/a/./x" has a "." segment"#),
        ("prod/a/..", #"key "prod/a/.." has a ".." segment"#),
        ("prod/a b", #"key "prod/a b" has invalid character " " at position 7: use A-Z a-z 0-9 . _ - and "/" between segments"#),
        ("prod/ä", #"key "prod/ä" has invalid character "ä" at position 6: use A-Z a-z 0-9 . _ - and "/" between segments"#),
        // An allowed letter with a combining mark is one character, not an allowed one: keys are
        // checked byte by byte first, and named character by character.
        ("prod/ae\u{301}.txt", "key \"prod/ae\u{301}.txt\" has invalid character \"e\u{301}\" at position 7: use A-Z a-z 0-9 . _ - and \"/\" between segments"),
    ])
    func rejectsInvalidKeys(_ string: String, _ message: String) {
        let error = #expect(throws: CapstanError.self) { try ConfigKey(string) }
        #expect(error?.code == .invalidKey)
        #expect(error?.message == message)
    }

    @Test func rejectsAnInvalidNamespaceWithTheNamespaceCode() {
        let error = #expect(throws: CapstanError.self) { try ConfigKey("Prod/a.yaml") }
        #expect(error?.code == .invalidNamespace)
        #expect(error?.message == #"key "Prod/a.yaml": namespace "Prod" has invalid character "P" at position 1: use a-z, 0-9 and "-""#)

        let parts = #expect(throws: CapstanError.self) { try ConfigKey(namespace: "a/b", path: "c") }
        #expect(parts?.code == .invalidNamespace)
    }

    @Test func limitsTheWholeKeyTo512Bytes() throws {
        let longest = "prod/" + String(repeating: "a", count: ConfigKey.maxLength - 5)
        #expect(try ConfigKey(longest).description.utf8.count == 512)
        let error = #expect(throws: CapstanError.self) { try ConfigKey(longest + "a") }
        #expect(error?.code == .invalidKey)
        #expect(error?.message.hasSuffix("is 513 bytes long: the limit is 512") == true)
    }

    @Test(arguments: [
        ("prod/app.yaml", "yaml"), ("prod/a/b.JSON", "json"), ("prod/x.tar.gz", "gz"),
        ("prod/README", nil), ("prod/.env", nil), ("prod/notes.", nil), ("prod/v1.2/readme", nil),
    ] as [(String, String?)])
    func fileExtensionOfTheLastSegment(_ string: String, _ expected: String?) throws {
        #expect(try ConfigKey(string).fileExtension == expected)
    }

    @Test func ordersByText() throws {
        let keys = try ["prod/b", "dev/z", "prod-eu/a", "prod/a"].map { try ConfigKey($0) }
        #expect(keys.sorted().map(\.description) == ["dev/z", "prod-eu/a", "prod/a", "prod/b"])
    }

    @Test func codesAsASingleString() throws {
        let key = try ConfigKey("prod/app.yaml")
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        let data = try encoder.encode([key])
        #expect(String(decoding: data, as: UTF8.self) == #"["prod/app.yaml"]"#)
        #expect(try JSONDecoder().decode([ConfigKey].self, from: data) == [key])
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([ConfigKey].self, from: Data(#"["prod"]"#.utf8))
        }
    }

    /// The one-scan check of the usual key agrees with the segment walk that explains a bad
    /// one, on every path of up to five characters over an alphabet with each kind of trouble.
    @Test func theQuickPathCheckAgreesWithTheSegmentWalk() {
        let alphabet = ["a", ".", "/", "-", "é", " "]
        var paths = [""]
        var frontier = [""]
        for _ in 1...5 {
            frontier = frontier.flatMap { path in alphabet.map { path + $0 } }
            paths += frontier
        }
        for path in paths {
            for isPrefix in [false, true] {
                let walked = (try? ConfigKey.checkSegments(path, offset: 5, of: "prod/" + path, isPrefix: isPrefix)) != nil
                #expect(ConfigKey.isPlainValidPath(path, isPrefix: isPrefix) == walked, "\(path.debugDescription) prefix: \(isPrefix)")
            }
        }
    }

    @Test func keysAreEqualAndHashedByTheirText() throws {
        let key = try ConfigKey("prod/a/b.yaml")
        let same = try ConfigKey(namespace: "prod", path: "a/b.yaml")
        #expect(key == same)
        #expect(Set([key, same]).count == 1)
        #expect(key != (try ConfigKey("prod/a/b.yml")))
    }
}
