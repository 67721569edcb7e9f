import Mustache

/// Renders a template's Mustache text into a config file.
///
/// Unlike plain Mustache, a name that resolves to nothing is an error, not an empty string: a
/// typo must not silently blank a setting in a config file. Sections (`{{#x}}`) over a missing,
/// false or empty value are fine (they render nothing), and so are inverted sections (`{{^x}}`).
/// Values are inserted as they are, without HTML escaping. Partials and delimiter changes are
/// not supported.
public enum TemplateRenderer {
    /// Renders `source` against `context` (an object: the merged data plus `node`).
    ///
    /// - Throws: `CapstanError(.invalidContent)` for bad Mustache and for names that resolve to
    ///   nothing; `CapstanError(.payloadTooLarge)` for a render past one of `limits`.
    public static func render(
        _ source: String, context: ConfigValue, limits: RenderLimits = RenderLimits()
    ) throws(CapstanError) -> String {
        let clock = ContinuousClock()
        let deadline = clock.now + limits.time
        try check(source, context: context)
        // Sections nested over lists multiply: a short template over a small document can stand
        // for gigabytes. Walked first without building any text, the render is refused as soon
        // as it passes a limit; only one that fits is rendered.
        var budget = RenderBudget(limits: limits, deadline: deadline)
        try budget.walk(try TemplatePiece.parse(source), stack: [context])
        let template: MustacheTemplate
        do {
            // Plain text: config files must not get HTML escapes. A standalone tag leaves no line.
            template = try MustacheTemplate(string: "{{%CONTENT_TYPE:TEXT}}\n" + source)
        } catch {
            throw CapstanError(.invalidContent, "template is not valid Mustache: \(error)")
        }
        let rendered = template.render(context.mustacheValue)
        // The walk's sizes are estimates (a list or an object is written as Swift shows it).
        guard rendered.utf8.count <= limits.outputBytes else { throw RenderBudget.tooLarge(limits) }
        guard clock.now <= deadline else { throw RenderBudget.tooSlow(limits) }
        return rendered
    }

    /// Finds the names `source` uses that `context` does not have.
    static func check(_ source: String, context: ConfigValue) throws(CapstanError) {
        var scanner = TagScanner(source)
        // The contexts names resolve in, innermost last; nil inside a section that renders nothing.
        var stack: [ConfigValue] = [context]
        var sections: [(name: String, pushed: Bool)] = []
        var skipping = 0
        var unknown: [String] = []
        while let tag = try scanner.next() {
            switch tag.kind {
            case .comment:
                continue
            case .unsupported(let what):
                throw CapstanError(.invalidContent, "template uses \(what), which Capstan does not support", line: tag.line)
            case .open(let inverted):
                guard skipping == 0, !inverted else {
                    if skipping > 0 { skipping += 1 }
                    sections.append((tag.name, false))
                    continue
                }
                switch SectionPass(over: resolve(tag.name, in: stack)) {
                case .skipped:
                    skipping = 1
                    sections.append((tag.name, false))
                case .sameContext:
                    sections.append((tag.name, false))
                case .inside(let value):
                    stack.append(value)
                    sections.append((tag.name, true))
                }
            case .close:
                guard let open = sections.popLast(), open.name == tag.name else {
                    throw CapstanError(.invalidContent, "template closes section \(tag.name.quoted) that is not open", line: tag.line)
                }
                if skipping > 0 { skipping -= 1 }
                if open.pushed { stack.removeLast() }
            case .variable:
                guard skipping == 0, tag.name != "." else { continue }
                if resolve(tag.name, in: stack) == nil, !unknown.contains(tag.name) {
                    unknown.append(tag.name)
                }
            }
        }
        if let open = sections.last {
            throw CapstanError(.invalidContent, "template never closes section \(open.name.quoted)")
        }
        if !unknown.isEmpty {
            throw CapstanError(
                .invalidContent,
                "template uses \(unknown.map(\.quoted).joined(separator: ", ")), which the data and node facts do not have")
        }
    }

    /// What a section over a value does, as the check follows it: renders nothing, renders in
    /// the context it is in, or renders with a value on top (a list's first item stands for all).
    private enum SectionPass {
        case skipped
        case sameContext
        case inside(ConfigValue)

        init(over value: ConfigValue?) {
            switch value {
            case nil, .null?, .bool(false)?: self = .skipped
            case .array(let items)?: self = items.first.map { .inside($0) } ?? .skipped
            case .bool(true)?: self = .sameContext
            // An object or a scalar is the innermost context inside, as swift-mustache has it.
            case let value?: self = .inside(value)
            }
        }
    }

    /// The value swift-mustache finds for `name`, the one lookup both the check and the render
    /// budget use: `.` is the innermost context; a name is split at its dots (empty parts
    /// dropped), the first part looked up from the innermost context out (in the innermost only
    /// after a leading `.`), the rest inside what was found.
    static func resolve(_ name: String, in stack: [ConfigValue]) -> ConfigValue? {
        let parts = name.split(separator: ".")
        guard let first = parts.first, !name.hasPrefix(".") else { return descend(parts[...], from: stack.last) }
        for context in stack.reversed() {
            if case .object(let fields) = context, let value = fields[String(first)] {
                return descend(parts.dropFirst(), from: value)
            }
        }
        return nil
    }

    private static func descend(_ parts: ArraySlice<Substring>, from value: ConfigValue?) -> ConfigValue? {
        var value = value
        for part in parts {
            guard case .object(let fields)? = value else { return nil }
            value = fields[String(part)]
        }
        return value
    }
}

extension ConfigValue {
    /// The value as swift-mustache walks it: dictionaries, arrays and plain values.
    var mustacheValue: Any {
        switch self {
        case .null: return ""
        case .bool(let value): return value
        case .int(let value): return value
        case .double(let value): return value
        case .string(let value): return value
        case .array(let items): return items.map(\.mustacheValue)
        case .object(let fields): return fields.mapValues(\.mustacheValue)
        }
    }
}

/// The tags of a Mustache text, with `{{` `}}` delimiters.
struct TagScanner {
    enum Kind {
        case variable
        case open(inverted: Bool)
        case close
        case comment
        case unsupported(String)
    }

    struct Tag {
        var kind: Kind
        var name: String
        var line: Int
        /// UTF-8 bytes of the text between the previous tag (or the start) and this one.
        var textBytes = 0
    }

    let text: [Character]
    var index = 0
    var line = 1
    /// Where the text after the last tag read starts, and where the tag being read starts.
    private var textStart = 0
    private var tagStart = 0

    /// UTF-8 bytes of the text after the last tag read.
    var trailingTextBytes: Int { bytes(from: textStart, to: text.count) }

    private func bytes(from start: Int, to end: Int) -> Int {
        text[start..<max(start, min(end, text.count))].reduce(0) { $0 + $1.utf8.count }
    }

    init(_ source: String) {
        text = Array(source)
    }

    mutating func next() throws(CapstanError) -> Tag? {
        let from = textStart
        guard var tag = try nextTag() else { return nil }
        tag.textBytes = bytes(from: from, to: tagStart)
        textStart = index
        return tag
    }

    private mutating func nextTag() throws(CapstanError) -> Tag? {
        while index + 1 < text.count {
            if text[index] == "\n" { line += 1 }
            guard text[index] == "{", text[index + 1] == "{" else {
                index += 1
                continue
            }
            let start = line
            tagStart = index
            index += 2
            let triple = index < text.count && text[index] == "{"
            if triple { index += 1 }
            var body = ""
            while index + 1 < text.count, !(text[index] == "}" && text[index + 1] == "}") {
                if text[index] == "\n" { line += 1 }
                body.append(text[index])
                index += 1
            }
            guard index + 1 < text.count else {
                throw CapstanError(.invalidContent, "template has \"{{\" without a closing \"}}\"", line: start)
            }
            index += 2
            if triple, index < text.count, text[index] == "}" { index += 1 }
            let trimmed = body.trimmingCharacters(in: .whitespaces)
            guard let sigil = trimmed.first else {
                throw CapstanError(.invalidContent, "template has an empty tag", line: start)
            }
            let rest = String(trimmed.dropFirst()).trimmingCharacters(in: .whitespaces)
            // swift-mustache reads `name(argument)` as a transform (`reversed(list)`, `first(list)`):
            // what a section over one repeats is not what its name says, so a render could not be
            // sized before it is built.
            if sigil != "!", trimmed.contains("(") {
                return Tag(kind: .unsupported("the transform \((sigil.isLetter ? trimmed : rest).quoted)"), name: "", line: start)
            }
            switch sigil {
            case "!": return Tag(kind: .comment, name: "", line: start)
            case "#": return Tag(kind: .open(inverted: false), name: rest, line: start)
            case "^": return Tag(kind: .open(inverted: true), name: rest, line: start)
            case "/": return Tag(kind: .close, name: rest, line: start)
            case ">": return Tag(kind: .unsupported("the partial \(rest.quoted)"), name: rest, line: start)
            case "=": return Tag(kind: .unsupported("a delimiter change"), name: "", line: start)
            case "%": return Tag(kind: .unsupported("a pragma"), name: "", line: start)
            case "$", "<": return Tag(kind: .unsupported("template inheritance"), name: "", line: start)
            case "&": return Tag(kind: .variable, name: rest, line: start)
            default: return Tag(kind: .variable, name: triple ? trimmed : trimmed, line: start)
            }
        }
        return nil
    }
}

import Foundation
