import Yams

/// Turns YAML into a `ConfigValue` through Yams, keeping the position of any error.
///
/// A config holds exactly one document, so a second `---` document is an error. Merge keys
/// (`<<`) are applied; explicit keys win over merged ones, earlier merges over later ones.
enum YAMLParser {
    static func parse(_ content: String) throws(CapstanError) -> ConfigValue {
        let root: Node?
        do {
            root = try Parser(yaml: content).singleRoot()
        } catch let error as YamlError {
            throw invalidContent(error, content: content)
        } catch {
            throw CapstanError(.invalidContent, "invalid YAML: \(error)")
        }
        guard let root else { return .object([:]) }
        var budget = Budget(textBytes: content.utf8.count)
        return try value(of: root, budget: &budget)
    }

    /// What a document may expand to. Aliases share nodes, so a few hundred bytes can stand for
    /// millions of values ("billion laughs"), which every reader of the data (template pushes,
    /// renders) would then pay for. Without aliases a document holds fewer values and bytes than
    /// its text; aliases may add at most `extraValues` values and `extraBytes` bytes to that.
    struct Budget {
        static let extraValues = 10_000
        static let extraBytes = 1 << 20
        let maxValues: Int
        let maxBytes: Int
        var values = 0
        var bytes = 0

        init(textBytes: Int) {
            maxValues = textBytes + Self.extraValues
            maxBytes = textBytes + Self.extraBytes
        }

        /// Counts one value of `bytes` bytes (its scalar, or a mapping key).
        mutating func spend(_ bytes: Int, at mark: Mark?) throws(CapstanError) {
            values += 1
            self.bytes += bytes
            if values > maxValues {
                throw error(
                    "aliases expand the document to more than \(maxValues) values "
                        + "(at most \(Self.extraValues) more than its text holds)", at: mark)
            }
            if self.bytes > maxBytes {
                throw error(
                    "aliases expand the document to more than \(ByteSize.format(maxBytes)) "
                        + "(at most \(ByteSize.format(Self.extraBytes)) more than its text)", at: mark)
            }
        }
    }

    private static func value(of node: Node, budget: inout Budget) throws(CapstanError) -> ConfigValue {
        switch node {
        case .scalar(let scalar):
            try budget.spend(scalar.string.utf8.count, at: node.mark)
            return value(of: scalar, node: node)
        case .sequence(let sequence):
            try budget.spend(0, at: node.mark)
            var array: [ConfigValue] = []
            array.reserveCapacity(sequence.count)
            for element in sequence {
                array.append(try value(of: element, budget: &budget))
            }
            return .array(array)
        case .mapping(let mapping):
            try budget.spend(0, at: node.mark)
            return try value(of: mapping, budget: &budget)
        case .alias(let alias):
            // Yams resolves aliases while composing; an alias node here has lost its target.
            throw error("unresolved alias \(alias.anchor.rawValue.quoted)", at: alias.mark)
        }
    }

    private static func value(of scalar: Node.Scalar, node: Node) -> ConfigValue {
        switch Tag.Name(rawValue: node.tag.rawValue) {
        case .null:
            return .null
        case .bool:
            return node.bool.map(ConfigValue.bool) ?? .string(scalar.string)
        case .int:
            if let int = node.int {
                return .int(Int64(int))
            }
            return node.float.map(ConfigValue.double) ?? .string(scalar.string)
        case .float:
            return node.float.map(ConfigValue.double) ?? .string(scalar.string)
        default:
            return .string(scalar.string)
        }
    }

    private static func value(of mapping: Node.Mapping, budget: inout Budget) throws(CapstanError) -> ConfigValue {
        var object: [String: ConfigValue] = [:]
        var merged: [[String: ConfigValue]] = []
        for (key, value) in mapping {
            if key.tag.rawValue == Tag.Name.merge.rawValue {
                merged += try mergeSources(value, budget: &budget)
                continue
            }
            guard case .scalar(let keyScalar) = key else {
                throw error("mapping keys must be scalars", at: key.mark)
            }
            try budget.spend(keyScalar.string.utf8.count, at: key.mark)
            object[keyScalar.string] = try self.value(of: value, budget: &budget)
        }
        for source in merged {
            object.merge(source) { explicit, _ in explicit }
        }
        return .object(object)
    }

    /// The mappings a merge key's value stands for: one mapping or a sequence of them.
    private static func mergeSources(_ node: Node, budget: inout Budget) throws(CapstanError) -> [[String: ConfigValue]] {
        let nodes: [Node] = if case .sequence(let sequence) = node { Array(sequence) } else { [node] }
        var sources: [[String: ConfigValue]] = []
        for node in nodes {
            guard case .mapping = node, case .object(let object) = try value(of: node, budget: &budget) else {
                throw error("a merge key \"<<\" needs a mapping or a list of mappings", at: node.mark)
            }
            sources.append(object)
        }
        return sources
    }

    private static func invalidContent(_ error: YamlError, content: String) -> CapstanError {
        switch error {
        case let .scanner(context, problem, mark, _),
            let .parser(context, problem, mark, _),
            let .composer(context, problem, mark, _):
            if problem == "but found another document" {
                return self.error("more than one document: a config holds exactly one", at: mark)
            }
            var reason = problem
            if let context {
                reason += " (\(context.text) that starts at line \(context.mark.line), column \(context.mark.column))"
            }
            return self.error(reason, at: mark)
        case let .reader(problem, offset, value, _):
            let position = offset.map { SourcePosition(utf8Offset: $0, in: content.utf8) }
            return CapstanError(
                .invalidContent,
                "invalid YAML: \(problem) (found U+\(hex4(value)))",
                line: position?.line, column: position?.column)
        case let .duplicatedKeysInMapping(duplicates, context):
            let keys = duplicates.map(\.quoted).joined(separator: ", ")
            return self.error("duplicate key \(keys) in a mapping", at: context.mark)
        default:
            return CapstanError(.invalidContent, "invalid YAML: \(error)")
        }
    }

    private static func hex4(_ value: Int32) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// An `invalidContent` error at a Yams mark, which counts lines and columns from 1.
    private static func error(_ reason: String, at mark: Mark?) -> CapstanError {
        CapstanError(.invalidContent, "invalid YAML: \(reason)", line: mark?.line, column: mark?.column)
    }
}
