/// How much one template render may produce and cost: a short template whose sections nest over
/// lists repeats its text once per combination of their items, which can be more than a disk or
/// a day holds.
public struct RenderLimits: Sendable, Hashable {
    /// Most bytes a rendered file may have.
    public var outputBytes: Int
    /// Longest a render may take.
    public var time: Duration
    /// Most tags and section passes a render may go through: what it costs beside its output
    /// (nested sections over long lists that write nothing still take time).
    public var steps: Int

    public init(outputBytes: Int = 16 << 20, time: Duration = .seconds(5), steps: Int = 1_000_000) {
        self.outputBytes = outputBytes
        self.time = time
        self.steps = steps
    }
}

/// A template's structure for the walk that sizes a render: text (by its length), names and
/// sections with what they hold.
indirect enum TemplatePiece {
    case text(Int)
    case variable(String)
    case section(String, inverted: Bool, body: [TemplatePiece])

    /// The pieces of `source`, which `TemplateRenderer.check` has found well formed.
    static func parse(_ source: String) throws(CapstanError) -> [TemplatePiece] {
        var scanner = TagScanner(source)
        var open: [(name: String, inverted: Bool, pieces: [TemplatePiece])] = [("", false, [])]
        while let tag = try scanner.next() {
            if tag.textBytes > 0 { open[open.count - 1].pieces.append(.text(tag.textBytes)) }
            switch tag.kind {
            case .variable:
                open[open.count - 1].pieces.append(.variable(tag.name))
            case .open(let inverted):
                open.append((tag.name, inverted, []))
            case .close:
                guard open.count > 1, let section = open.popLast() else {
                    throw CapstanError(.invalidContent, "template closes section \(tag.name.quoted) that is not open", line: tag.line)
                }
                open[open.count - 1].pieces.append(.section(section.name, inverted: section.inverted, body: section.pieces))
            case .comment, .unsupported:
                continue
            }
        }
        if scanner.trailingTextBytes > 0 { open[open.count - 1].pieces.append(.text(scanner.trailingTextBytes)) }
        return open[0].pieces
    }
}

/// Walks a template over its data as swift-mustache renders it (the same sections, each as
/// often), adding up what the render would write without writing it, and stops at the first
/// limit passed.
struct RenderBudget {
    let limits: RenderLimits
    let deadline: ContinuousClock.Instant
    private(set) var output = 0
    private(set) var steps = 0

    init(limits: RenderLimits, deadline: ContinuousClock.Instant) {
        self.limits = limits
        self.deadline = deadline
    }

    static func tooLarge(_ limits: RenderLimits) -> CapstanError {
        CapstanError(
            .payloadTooLarge,
            "the template renders more than \(ByteSize.format(limits.outputBytes)), the most a rendered file may have "
                + "(sections nested over lists repeat their text for every combination of items)")
    }

    static func tooSlow(_ limits: RenderLimits) -> CapstanError {
        CapstanError(.payloadTooLarge, "rendering the template took longer than \(limits.time), the most a render may take")
    }

    static func tooManySteps(_ limits: RenderLimits) -> CapstanError {
        CapstanError(
            .payloadTooLarge,
            "the template's sections repeat more than \(limits.steps) times, the most a render may go through "
                + "(sections nested over lists repeat for every combination of items)")
    }

    mutating func walk(_ pieces: [TemplatePiece], stack: [ConfigValue]) throws(CapstanError) {
        var stack = stack
        for piece in pieces {
            try step()
            switch piece {
            case .text(let bytes):
                try write(bytes)
            case .variable(let name):
                guard let value = TemplateRenderer.resolve(name, in: stack) else { continue }
                try write(Self.renderedSize(of: value, atMost: limits.outputBytes - output + 1))
            case .section(let name, let inverted, let body):
                let value = TemplateRenderer.resolve(name, in: stack)
                if inverted {
                    switch value {
                    case nil, .bool(false)?: try walk(body, stack: stack)
                    case .array(let items)? where items.isEmpty: try walk(body, stack: stack)
                    default: continue
                    }
                    continue
                }
                switch value {
                case nil, .bool(false)?:
                    continue
                case .bool(true)?:
                    try walk(body, stack: stack)
                case .array(let items)?:
                    for item in items {
                        try step()
                        stack.append(item)
                        try walk(body, stack: stack)
                        stack.removeLast()
                    }
                case let value?:
                    // An object, a scalar, or null (which swift-mustache sees as ""): once, on top.
                    stack.append(value)
                    try walk(body, stack: stack)
                    stack.removeLast()
                }
            }
        }
    }

    private mutating func write(_ bytes: Int) throws(CapstanError) {
        output += bytes
        if output > limits.outputBytes { throw Self.tooLarge(limits) }
    }

    private mutating func step() throws(CapstanError) {
        steps += 1
        if steps > limits.steps { throw Self.tooManySteps(limits) }
        if steps & 1023 == 0, ContinuousClock.now > deadline { throw Self.tooSlow(limits) }
    }

    /// About how many bytes `value` renders as (a list or an object as Swift describes it, its
    /// strings quoted), counted no further than `limit`.
    static func renderedSize(of value: ConfigValue, atMost limit: Int) -> Int {
        switch value {
        case .null: return 0
        case .bool(let flag): return flag ? 4 : 5
        case .int(let number): return String(number).utf8.count
        case .double(let number): return String(describing: number).utf8.count
        case .string(let text): return text.utf8.count
        case .array(let items):
            var size = 2
            for item in items where size <= limit { size += 2 + nestedSize(of: item, atMost: limit - size) }
            return size
        case .object(let fields):
            var size = 2
            for (key, item) in fields where size <= limit { size += 6 + key.utf8.count + nestedSize(of: item, atMost: limit - size) }
            return size
        }
    }

    /// Inside a list or an object a string is quoted and escaped.
    private static func nestedSize(of value: ConfigValue, atMost limit: Int) -> Int {
        if case .string(let text) = value { return 2 * text.utf8.count + 2 }
        return renderedSize(of: value, atMost: limit)
    }
}
