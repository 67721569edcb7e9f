/// Unified diffs of text, as `diff -u` prints them.
public enum UnifiedDiff {
    /// The unified diff from `old` to `new`, or "" when they are identical.
    ///
    /// - Parameters:
    ///   - oldLabel: The name on the `---` line.
    ///   - newLabel: The name on the `+++` line.
    ///   - context: How many unchanged lines to show around each change. Hunks whose context
    ///     would touch or overlap are merged.
    public static func make(old: String, new: String, oldLabel: String, newLabel: String, context: Int = 3) -> String {
        guard old != new else { return "" }
        let oldLines = lines(of: old)
        let newLines = lines(of: new)
        let edits = LineDiff.edits(from: oldLines, to: newLines)
        var output = "--- \(oldLabel)\n+++ \(newLabel)\n"
        // Lines of each side consumed by the edits before the current hunk.
        var oldStart = 0, newStart = 0, counted = 0
        for hunk in hunks(of: edits, context: max(0, context)) {
            for edit in edits[counted..<hunk.lowerBound] {
                oldStart += edit.oldCount
                newStart += edit.newCount
            }
            counted = hunk.lowerBound
            output += header(for: edits[hunk], oldStart: oldStart, newStart: newStart)
            for edit in edits[hunk] {
                switch edit {
                case .keep(let index, _): append(" ", oldLines[index], to: &output)
                case .delete(let index): append("-", oldLines[index], to: &output)
                case .insert(let index): append("+", newLines[index], to: &output)
                }
            }
        }
        return output
    }

    /// The lines of `text`, each keeping its "\n" so that a last line without one differs
    /// from the same line with one.
    private static func lines(of text: String) -> [Substring] {
        var lines: [Substring] = []
        var start = text.startIndex
        while let newline = text[start...].firstIndex(of: "\n") {
            let end = text.index(after: newline)
            lines.append(text[start..<end])
            start = end
        }
        if start < text.endIndex {
            lines.append(text[start...])
        }
        return lines
    }

    private static func append(_ marker: Character, _ line: Substring, to output: inout String) {
        output.append(marker)
        output += line
        if line.last != "\n" {
            output += "\n\\ No newline at end of file\n"
        }
    }

    /// Ranges of `edits` to print: each change with up to `context` kept lines on either side,
    /// joined when fewer than 2 × `context` kept lines separate two changes.
    private static func hunks(of edits: [LineDiff.Edit], context: Int) -> [Range<Int>] {
        let changes = edits.indices.filter { if case .keep = edits[$0] { false } else { true } }
        var hunks: [Range<Int>] = []
        var index = 0
        while index < changes.count {
            let first = changes[index]
            var last = first
            index += 1
            while index < changes.count, changes[index] - last - 1 <= 2 * context {
                last = changes[index]
                index += 1
            }
            hunks.append(max(0, first - context)..<min(edits.count, last + 1 + context))
        }
        return hunks
    }

    private static func header(for hunk: ArraySlice<LineDiff.Edit>, oldStart: Int, newStart: Int) -> String {
        let oldCount = hunk.reduce(0) { $0 + $1.oldCount }
        let newCount = hunk.reduce(0) { $0 + $1.newCount }
        return "@@ -\(range(start: oldStart, count: oldCount)) +\(range(start: newStart, count: newCount)) @@\n"
    }

    /// A hunk range as GNU diff writes it: "start,count", "start" alone when the count is 1, and
    /// for an empty range the line before it.
    private static func range(start: Int, count: Int) -> String {
        switch count {
        case 0: "\(start),0"
        case 1: "\(start + 1)"
        default: "\(start + 1),\(count)"
        }
    }
}

extension LineDiff.Edit {
    /// How many old lines the edit consumes.
    fileprivate var oldCount: Int {
        if case .insert = self { 0 } else { 1 }
    }

    /// How many new lines the edit produces.
    fileprivate var newCount: Int {
        if case .delete = self { 0 } else { 1 }
    }
}
