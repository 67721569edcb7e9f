import Testing

@testable import CapstanCore

@Suite struct ConfigFormatTests {
    @Test(arguments: [
        ("yaml", ConfigFormat.yaml), ("YML", .yaml), ("Json", .json), ("properties", .properties),
        ("TOML", .toml), ("text", .text),
    ])
    func looksUpNamesIgnoringCase(_ name: String, _ format: ConfigFormat) throws {
        #expect(try ConfigFormat(name: name) == format)
    }

    @Test func rejectsUnknownNamesListingTheValidOnes() {
        let error = #expect(throws: CapstanError.self) { try ConfigFormat(name: "xml") }
        #expect(error?.code == .invalidFormat)
        #expect(error?.message == #"unknown format "xml": use yaml, json, properties, toml or text"#)
    }

    @Test(arguments: [
        ("app.yaml", ConfigFormat.yaml), ("a/b/app.YML", .yaml), ("x.json", .json), ("db.properties", .properties),
        ("Cargo.toml", .toml), ("notes.txt", .text), ("README", .text), ("a.yaml/b", .text), (".yaml", .text),
    ])
    func infersTheFormatFromTheExtension(_ path: String, _ format: ConfigFormat) {
        #expect(ConfigFormat.infer(fromPath: path) == format)
    }

    @Test func mediaTypes() {
        #expect(ConfigFormat.yaml.mediaType == "application/yaml; charset=utf-8")
        #expect(ConfigFormat.json.mediaType == "application/json; charset=utf-8")
        #expect(ConfigFormat.properties.mediaType == "text/x-java-properties; charset=utf-8")
        #expect(ConfigFormat.toml.mediaType == "application/toml; charset=utf-8")
        #expect(ConfigFormat.text.mediaType == "text/plain; charset=utf-8")
    }

    @Test func textIsAlwaysOneString() throws {
        #expect(try ConfigFormat.text.parse("{ not: [json") == .string("{ not: [json"))
        #expect(try ConfigFormat.text.parse("") == .string(""))
    }

    @Test func emptyContentIsAnEmptyObjectExceptForJSON() throws {
        #expect(try ConfigFormat.yaml.parse("") == .object([:]))
        #expect(try ConfigFormat.toml.parse("") == .object([:]))
        #expect(try ConfigFormat.properties.parse("") == .object([:]))
        let error = contentError(.json, "")
        #expect(error?.code == .invalidContent)
        #expect(error?.line == 1)
        #expect(error?.column == 1)
    }
}
