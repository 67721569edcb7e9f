import Testing

@testable import CapstanCore

@Suite struct UnifiedDiffTests {
    private func diff(_ old: String, _ new: String, context: Int = 3) -> String {
        UnifiedDiff.make(old: old, new: new, oldLabel: "a", newLabel: "b", context: context)
    }

    @Test func identicalTextHasNoDiff() {
        #expect(diff("", "") == "")
        #expect(diff("a\nb\n", "a\nb\n") == "")
    }

    @Test func fromEmpty() {
        #expect(diff("", "x\ny\n") == "--- a\n+++ b\n@@ -0,0 +1,2 @@\n+x\n+y\n")
    }

    @Test func toEmpty() {
        #expect(diff("x\n", "") == "--- a\n+++ b\n@@ -1 +0,0 @@\n-x\n")
    }

    @Test func changeAtTheStart() {
        #expect(diff("a\nb\nc\nd\ne\n", "A\nb\nc\nd\ne\n")
            == "--- a\n+++ b\n@@ -1,4 +1,4 @@\n-a\n+A\n b\n c\n d\n")
    }

    @Test func changeAtTheEnd() {
        #expect(diff("a\nb\nc\nd\ne\n", "a\nb\nc\nd\nE\n")
            == "--- a\n+++ b\n@@ -2,4 +2,4 @@\n b\n c\n d\n-e\n+E\n")
    }

    @Test func insertionInTheMiddle() {
        #expect(diff("1\n2\n3\n4\n5\n6\n7\n8\n", "1\n2\n3\n4\nnew\n5\n6\n7\n8\n")
            == "--- a\n+++ b\n@@ -2,6 +2,7 @@\n 2\n 3\n 4\n+new\n 5\n 6\n 7\n")
    }

    @Test func distantChangesGetSeparateHunks() {
        let old = (1...20).map { "\($0)\n" }.joined()
        let new = old.replacingFirst("2\n", with: "two\n").replacingFirst("19\n", with: "nineteen\n")
        #expect(diff(old, new) == """
            --- a
            +++ b
            @@ -1,5 +1,5 @@
             1
            -2
            +two
             3
             4
             5
            @@ -16,5 +16,5 @@
             16
             17
             18
            -19
            +nineteen
             20

            """)
    }

    @Test func closeChangesShareAHunk() {
        // Six unchanged lines (2 × context) between the changes: one hunk.
        let old = (1...10).map { "\($0)\n" }.joined()
        let new = old.replacingFirst("2\n", with: "x\n").replacingFirst("9\n", with: "y\n")
        #expect(diff(old, new) == "--- a\n+++ b\n@@ -1,10 +1,10 @@\n 1\n-2\n+x\n 3\n 4\n 5\n 6\n 7\n 8\n-9\n+y\n 10\n")
        // Seven unchanged lines: two hunks.
        let longer = (1...11).map { "\($0)\n" }.joined()
        let changed = longer.replacingFirst("2\n", with: "x\n").replacingFirst("10\n", with: "y\n")
        #expect(diff(longer, changed).components(separatedBy: "@@ -").count == 3)
    }

    @Test func zeroContext() {
        #expect(diff("a\nb\nc\n", "a\nB\nc\n", context: 0) == "--- a\n+++ b\n@@ -2 +2 @@\n-b\n+B\n")
        #expect(diff("a\nc\n", "a\nb\nc\n", context: 0) == "--- a\n+++ b\n@@ -1,0 +2 @@\n+b\n")
    }

    @Test func marksAMissingFinalNewline() {
        #expect(diff("a\nb", "a\nb\n") == "--- a\n+++ b\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n")
        #expect(diff("a\n", "a\nb") == "--- a\n+++ b\n@@ -1 +1,2 @@\n a\n+b\n\\ No newline at end of file\n")
        #expect(diff("x", "y") == "--- a\n+++ b\n@@ -1 +1 @@\n-x\n\\ No newline at end of file\n+y\n\\ No newline at end of file\n")
    }

    @Test func applyingTheDiffReproducesTheNewText() throws {
        var random = SplitMix64(seed: 0xCA95_7A11)
        let alphabet = ["a\n", "b\n", "c\n", "d\n", "e\n"]
        func randomText() -> String {
            var text = (0..<random.next(below: 25)).map { _ in alphabet[random.next(below: alphabet.count)] }.joined()
            if !text.isEmpty, random.next(below: 4) == 0 {
                text.removeLast()
            }
            return text
        }
        for _ in 0..<400 {
            let old = randomText()
            let new = random.next(below: 5) == 0 ? mutate(old, &random) : randomText()
            let context = random.next(below: 4)
            let patch = diff(old, new, context: context)
            #expect(try apply(patch, to: old) == new, "old: \(old.debugDescription) new: \(new.debugDescription)")
            #expect((patch.isEmpty) == (old == new))
        }
    }

    @Test func largeInputsStayFast() throws {
        let old = (0..<20_000).map { "line \($0)\n" }.joined()
        let new = (0..<20_000).map { $0 % 100 == 0 ? "changed \($0)\n" : "line \($0)\n" }.joined()
        #expect(try apply(diff(old, new), to: old) == new)
        let rewritten = (0..<5_000).map { "other \($0)\n" }.joined()
        #expect(try apply(diff(old, rewritten), to: old) == rewritten)
        // Shared braces keep the lines in play, so the search has to give up early.
        let braced = (0..<10_000).map { $0 % 2 == 0 ? "}\n" : "old \($0)\n" }.joined()
        let rebraced = (0..<10_000).map { $0 % 3 == 0 ? "}\n" : "new \($0)\n" }.joined()
        #expect(try apply(diff(braced, rebraced), to: braced) == rebraced)
    }

    private func mutate(_ text: String, _ random: inout SplitMix64) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard !lines.isEmpty else { return "z" }
        lines[random.next(below: lines.count)] = "z"
        return lines.joined(separator: "\n")
    }
}

/// Applies a unified diff strictly: every context and removed line must match.
private func apply(_ patch: String, to old: String) throws -> String {
    struct PatchError: Error, CustomStringConvertible { let description: String }
    guard !patch.isEmpty else { return old }
    var oldLines = splitKeepingNewlines(old)
    var result: [String] = []
    var position = 0
    var patchLines = patch.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    guard patchLines.last == "" else { throw PatchError(description: "patch does not end with a newline") }
    patchLines.removeLast()
    guard patchLines.count >= 2, patchLines[0].hasPrefix("--- "), patchLines[1].hasPrefix("+++ ") else {
        throw PatchError(description: "missing file headers")
    }
    var index = 2
    while index < patchLines.count {
        let header = patchLines[index]
        guard header.hasPrefix("@@ -"), header.hasSuffix(" @@") else {
            throw PatchError(description: "bad hunk header \(header)")
        }
        let ranges = header.dropFirst(3).dropLast(3).split(separator: " ")
        guard ranges.count == 2 else { throw PatchError(description: "bad hunk header \(header)") }
        let (oldStart, oldCount) = try parseRange(ranges[0].dropFirst())
        let (_, newCount) = try parseRange(ranges[1].dropFirst())
        // A hunk with no old lines is inserted after line `oldStart`.
        let hunkStart = oldCount == 0 ? oldStart : oldStart - 1
        guard hunkStart >= position, hunkStart <= oldLines.count else {
            throw PatchError(description: "hunk \(header) out of order or past the end")
        }
        result += oldLines[position..<hunkStart]
        position = hunkStart
        index += 1
        var seenOld = 0, seenNew = 0
        while index < patchLines.count, !patchLines[index].hasPrefix("@@") {
            let line = patchLines[index]
            var text = String(line.dropFirst()) + "\n"
            if index + 1 < patchLines.count, patchLines[index + 1] == "\\ No newline at end of file" {
                text.removeLast()
                index += 1
            }
            switch line.first ?? "?" {
            case " ", "-":
                guard position < oldLines.count, oldLines[position] == text else {
                    throw PatchError(description: "mismatch at old line \(position + 1)")
                }
                if line.first == " " {
                    result.append(text)
                    seenNew += 1
                }
                position += 1
                seenOld += 1
            case "+":
                result.append(text)
                seenNew += 1
            default:
                throw PatchError(description: "bad line \(line)")
            }
            index += 1
        }
        guard seenOld == oldCount, seenNew == newCount else {
            throw PatchError(description: "hunk counts do not match its header \(header)")
        }
    }
    result += oldLines[position...]
    oldLines.removeAll()
    return result.joined()
}

private func parseRange(_ text: Substring) throws -> (start: Int, count: Int) {
    let parts = text.split(separator: ",")
    guard let start = Int(parts[0]) else { throw CapstanError(.internal, "bad range \(text)") }
    let count = parts.count > 1 ? Int(parts[1]) ?? -1 : 1
    return (start, count)
}

private func splitKeepingNewlines(_ text: String) -> [String] {
    var lines: [String] = []
    var current = ""
    for character in text {
        current.append(character)
        if character == "\n" {
            lines.append(current)
            current = ""
        }
    }
    if !current.isEmpty {
        lines.append(current)
    }
    return lines
}

/// A small seeded generator so random tests repeat exactly.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func next(below bound: Int) -> Int {
        Int(next() % UInt64(bound))
    }
}

extension String {
    fileprivate func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = range(of: target) else { return self }
        return replacingCharacters(in: range, with: replacement)
    }
}
