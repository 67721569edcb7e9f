/// A shortest edit script between two sequences, by Myers' O(ND) algorithm in its linear-space
/// form: find the middle snake of the edit graph, then solve each half.
enum LineDiff {
    enum Edit: Equatable {
        /// Element `old` of the old sequence equals element `new` of the new one.
        case keep(old: Int, new: Int)
        case delete(old: Int)
        case insert(new: Int)
    }

    /// The edits that turn `old` into `new`, in order. Within a run of changes, deletions come
    /// before insertions.
    static func edits<Element: Hashable>(from old: [Element], to new: [Element]) -> [Edit] {
        // Compare small integers instead of the elements themselves.
        var ids: [Element: Int] = [:]
        func id(of element: Element) -> Int {
            if let id = ids[element] { return id }
            ids[element] = ids.count
            return ids.count - 1
        }
        let aIDs = old.map(id(of:))
        let bIDs = new.map(id(of:))
        var edits: [Edit] = []
        edits.reserveCapacity(max(old.count, new.count))
        diff(aIDs, 0..<aIDs.count, bIDs, 0..<bIDs.count, into: &edits)
        return groupChanges(edits)
    }

    private static func diff(_ a: [Int], _ aRange: Range<Int>, _ b: [Int], _ bRange: Range<Int>, into edits: inout [Edit]) {
        var aLow = aRange.lowerBound, aHigh = aRange.upperBound
        var bLow = bRange.lowerBound, bHigh = bRange.upperBound
        while aLow < aHigh, bLow < bHigh, a[aLow] == b[bLow] {
            edits.append(.keep(old: aLow, new: bLow))
            aLow += 1
            bLow += 1
        }
        var suffix = 0
        while aHigh > aLow, bHigh > bLow, a[aHigh - 1] == b[bHigh - 1] {
            aHigh -= 1
            bHigh -= 1
            suffix += 1
        }
        if aLow == aHigh {
            for index in bLow..<bHigh {
                edits.append(.insert(new: index))
            }
        } else if bLow == bHigh {
            for index in aLow..<aHigh {
                edits.append(.delete(old: index))
            }
        } else {
            let (x, y) = middleSnake(a, aLow..<aHigh, b, bLow..<bHigh)
            diff(a, aLow..<x, b, bLow..<y, into: &edits)
            diff(a, x..<aHigh, b, y..<bHigh, into: &edits)
        }
        for offset in 0..<suffix {
            edits.append(.keep(old: aHigh + offset, new: bHigh + offset))
        }
    }

    /// A point on an optimal path through the edit graph of two non-empty ranges, found where
    /// the forward and backward searches first overlap. It is never the start or the end, so
    /// both halves are strictly smaller.
    private static func middleSnake(
        _ a: [Int], _ aRange: Range<Int>, _ b: [Int], _ bRange: Range<Int>
    ) -> (Int, Int) {
        let n = aRange.count, m = bRange.count
        let aBase = aRange.lowerBound, bBase = bRange.lowerBound
        let maxD = (n + m + 1) / 2
        let offset = maxD + 1
        let width = 2 * maxD + 3
        // forward[k]: furthest x on diagonal k (x - y) going forward; backward likewise, in
        // coordinates measured from the end.
        var forward = [Int](repeating: -1, count: width)
        var backward = [Int](repeating: -1, count: width)
        forward[offset + 1] = 0
        backward[offset + 1] = 0
        let delta = n - m
        let deltaIsOdd = delta % 2 != 0
        for d in 0...maxD {
            for k in stride(from: -d, through: d, by: 2) {
                var x = if k == -d || (k != d && forward[offset + k - 1] < forward[offset + k + 1]) {
                    forward[offset + k + 1]
                } else {
                    forward[offset + k - 1] + 1
                }
                var y = x - k
                if x > n || y > m || y < 0 { continue }
                let startX = x, startY = y
                while x < n, y < m, a[aBase + x] == b[bBase + y] {
                    x += 1
                    y += 1
                }
                forward[offset + k] = x
                if deltaIsOdd {
                    let reverseK = delta - k
                    if reverseK >= -(d - 1), reverseK <= d - 1, backward[offset + reverseK] >= 0,
                        x + backward[offset + reverseK] >= n
                    {
                        return split(startX, startY, x, y, n: n, m: m, aBase: aBase, bBase: bBase)
                    }
                }
            }
            for k in stride(from: -d, through: d, by: 2) {
                var x = if k == -d || (k != d && backward[offset + k - 1] < backward[offset + k + 1]) {
                    backward[offset + k + 1]
                } else {
                    backward[offset + k - 1] + 1
                }
                var y = x - k
                if x > n || y > m || y < 0 { continue }
                let startX = x, startY = y
                while x < n, y < m, a[aBase + n - x - 1] == b[bBase + m - y - 1] {
                    x += 1
                    y += 1
                }
                backward[offset + k] = x
                if !deltaIsOdd {
                    let forwardK = delta - k
                    if forwardK >= -d, forwardK <= d, forward[offset + forwardK] >= 0,
                        forward[offset + forwardK] + x >= n
                    {
                        return split(n - x, m - y, n - startX, m - startY, n: n, m: m, aBase: aBase, bBase: bBase)
                    }
                }
            }
        }
        // Unreachable: the searches always meet by d = maxD. Any split that shrinks both
        // halves still gives a correct, if longer, script.
        return (aBase + (n + 1) / 2, bBase)
    }

    /// Chooses a split point from the snake `(x0, y0)...(x1, y1)` that is not a corner of the
    /// graph, so the recursion always shrinks.
    private static func split(
        _ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, n: Int, m: Int, aBase: Int, bBase: Int
    ) -> (Int, Int) {
        for (x, y) in [(x0, y0), (x1, y1)] where !(x == 0 && y == 0) && !(x == n && y == m) {
            return (aBase + x, bBase + y)
        }
        // Only a snake from corner to corner gets here, and that means equal ranges, which the
        // caller rules out by trimming common ends. Still, split somewhere that shrinks.
        return (aBase + (n + 1) / 2, bBase)
    }

    /// Reorders each run of changes so that its deletions come before its insertions.
    private static func groupChanges(_ edits: [Edit]) -> [Edit] {
        var result: [Edit] = []
        result.reserveCapacity(edits.count)
        var deletions: [Edit] = []
        var insertions: [Edit] = []
        func flush() {
            result += deletions
            result += insertions
            deletions.removeAll(keepingCapacity: true)
            insertions.removeAll(keepingCapacity: true)
        }
        for edit in edits {
            switch edit {
            case .keep:
                flush()
                result.append(edit)
            case .delete: deletions.append(edit)
            case .insert: insertions.append(edit)
            }
        }
        flush()
        return result
    }
}
