/// The formats a config can be stored in, each with its own parser.
public enum ConfigFormat: String, CaseIterable, Sendable, Codable {
    case yaml, json, properties, toml, text

    /// Looks a format up by name, ignoring case; "yml" is accepted for YAML.
    ///
    /// - Throws: `CapstanError` with code `invalidFormat`, listing the valid names.
    public init(name: String) throws(CapstanError) {
        let lowercased = name.lowercased()
        if let format = ConfigFormat(rawValue: lowercased) {
            self = format
        } else if lowercased == "yml" {
            self = .yaml
        } else {
            let names = Self.allCases.map(\.rawValue)
            throw CapstanError(
                .invalidFormat,
                "unknown format \(name.quotedExcerpt): use \(names.dropLast().joined(separator: ", ")) or \(names.last!)")
        }
    }

    /// The format a file name suggests by its extension; `text` when there is none or it is
    /// not recognised.
    public static func infer(fromPath path: String) -> ConfigFormat {
        switch ConfigKey.fileExtension(ofPath: path) {
        case "yaml", "yml": .yaml
        case "json": .json
        case "properties": .properties
        case "toml": .toml
        default: .text
        }
    }

    /// The Content-Type to serve a config of this format with.
    public var mediaType: String {
        let type = switch self {
        case .yaml: "application/yaml"
        case .json: "application/json"
        case .properties: "text/x-java-properties"
        case .toml: "application/toml"
        case .text: "text/plain"
        }
        return type + "; charset=utf-8"
    }

    /// Parses `content` in this format.
    ///
    /// Empty content is an empty object for YAML, TOML and properties, and an error for JSON.
    /// Text always parses, as a single string.
    ///
    /// - Throws: `CapstanError` with code `invalidContent`, the parser's reason and the 1-based
    ///   line and column of the problem.
    public func parse(_ content: String) throws(CapstanError) -> ConfigValue {
        switch self {
        case .yaml: try YAMLParser.parse(content)
        case .json: try JSONParser.parse(content)
        case .properties: try PropertiesParser.parse(content)
        case .toml: try TOMLParser.parse(content)
        case .text: .string(content)
        }
    }
}
