/// An edit script between two sequences, by Myers' O(ND) algorithm in its linear-space form:
/// find the middle snake of the edit graph, then solve each half.
///
/// Two shortcuts keep large, very different inputs fast, at the cost of a script that may be
/// slightly longer than the shortest: elements found in only one sequence are set aside before
/// diffing, and a search that grows too expensive splits at its furthest point so far.
enum LineDiff {
    enum Edit: Equatable {
        /// Element `old` of the old sequence equals element `new` of the new one.
        case keep(old: Int, new: Int)
        case delete(old: Int)
        case insert(new: Int)
    }

    /// The number of edits after which a middle-snake search settles for a good split.
    private static let costLimit = 1024

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
        let oldIDs = old.map(id(of:))
        let newIDs = new.map(id(of:))

        // An element missing from the other side can only be deleted or inserted.
        let inNew = Set(newIDs)
        let inOld = Set(oldIDs)
        let oldKept = oldIDs.indices.filter { inNew.contains(oldIDs[$0]) }
        let newKept = newIDs.indices.filter { inOld.contains(newIDs[$0]) }
        var reduced: [Edit] = []
        diff(oldKept.map { oldIDs[$0] }, 0..<oldKept.count, newKept.map { newIDs[$0] }, 0..<newKept.count, into: &reduced)

        var edits: [Edit] = []
        edits.reserveCapacity(max(old.count, new.count))
        var oldNext = 0, newNext = 0
        func catchUp(old oldEnd: Int, new newEnd: Int) {
            edits += (oldNext..<oldEnd).map { .delete(old: $0) }
            edits += (newNext..<newEnd).map { .insert(new: $0) }
            oldNext = max(oldNext, oldEnd)
            newNext = max(newNext, newEnd)
        }
        for edit in reduced {
            switch edit {
            case .keep(let oldIndex, let newIndex):
                catchUp(old: oldKept[oldIndex], new: newKept[newIndex])
                edits.append(.keep(old: oldNext, new: newNext))
                oldNext += 1
                newNext += 1
            case .delete(let oldIndex):
                catchUp(old: oldKept[oldIndex] + 1, new: newNext)
            case .insert(let newIndex):
                catchUp(old: oldNext, new: newKept[newIndex] + 1)
            }
        }
        catchUp(old: old.count, new: new.count)
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
            edits += (bLow..<bHigh).map { .insert(new: $0) }
        } else if bLow == bHigh {
            edits += (aLow..<aHigh).map { .delete(old: $0) }
        } else {
            let (x, y) = middleSnake(a, aLow..<aHigh, b, bLow..<bHigh)
            diff(a, aLow..<x, b, bLow..<y, into: &edits)
            diff(a, x..<aHigh, b, y..<bHigh, into: &edits)
        }
        edits += (0..<suffix).map { .keep(old: aHigh + $0, new: bHigh + $0) }
    }

    /// A point on a good path through the edit graph of two non-empty ranges that differ at
    /// both ends. It is never the start or the end, so both halves are strictly smaller.
    private static func middleSnake(
        _ a: [Int], _ aRange: Range<Int>, _ b: [Int], _ bRange: Range<Int>
    ) -> (Int, Int) {
        let n = aRange.count, m = bRange.count
        let aBase = aRange.lowerBound, bBase = bRange.lowerBound
        let maxD = (n + m + 1) / 2
        let offset = maxD + 1
        // forward[offset + k]: the furthest x on diagonal k = x - y after d edits from the
        // start; backward likewise from the end, in coordinates counted back from (n, m).
        // -1 marks a diagonal not reachable within the graph.
        var forward = [Int](repeating: -1, count: 2 * maxD + 3)
        var backward = forward
        forward[offset + 1] = 0
        backward[offset + 1] = 0
        let delta = n - m
        let deltaIsOdd = delta % 2 != 0

        /// The furthest point on diagonal `k` one edit beyond `v`'s neighbours, or nil.
        func step(_ v: [Int], _ k: Int) -> Int? {
            var best: Int?
            let down = v[offset + k + 1]  // one insertion: x stays
            if down >= 0, down - k >= 0, down - k <= m {
                best = down
            }
            let right = v[offset + k - 1]  // one deletion: x grows
            if right >= 0, right + 1 <= n, right + 1 - k >= 0, right + 1 - k <= m, right + 1 > (best ?? -1) {
                best = right + 1
            }
            return best
        }

        for d in 0...maxD {
            if d > costLimit {
                return furthestSplit(forward, d: d - 1, offset: offset, n: n, m: m, aBase: aBase, bBase: bBase)
            }
            for k in stride(from: -d, through: d, by: 2) {
                guard let start = step(forward, k) else {
                    forward[offset + k] = -1
                    continue
                }
                var x = start, y = start - k
                while x < n, y < m, a[aBase + x] == b[bBase + y] {
                    x += 1
                    y += 1
                }
                forward[offset + k] = x
                let reverseK = delta - k
                if deltaIsOdd, abs(reverseK) <= d - 1, backward[offset + reverseK] >= 0,
                    x + backward[offset + reverseK] >= n
                {
                    return split((start, start - k), (x, y), n: n, m: m, aBase: aBase, bBase: bBase)
                }
            }
            for k in stride(from: -d, through: d, by: 2) {
                guard let start = step(backward, k) else {
                    backward[offset + k] = -1
                    continue
                }
                var x = start, y = start - k
                while x < n, y < m, a[aBase + n - x - 1] == b[bBase + m - y - 1] {
                    x += 1
                    y += 1
                }
                backward[offset + k] = x
                let forwardK = delta - k
                if !deltaIsOdd, abs(forwardK) <= d, forward[offset + forwardK] >= 0,
                    forward[offset + forwardK] + x >= n
                {
                    return split((n - x, m - y), (n - start, m - start + k), n: n, m: m, aBase: aBase, bBase: bBase)
                }
            }
        }
        // Unreachable: the searches meet by d = maxD.
        return (aBase + (n + 1) / 2, bBase)
    }

    /// The forward point after `d` edits that got furthest, for a search that gave up.
    private static func furthestSplit(
        _ forward: [Int], d: Int, offset: Int, n: Int, m: Int, aBase: Int, bBase: Int
    ) -> (Int, Int) {
        var best = (x: 0, y: 0)
        for k in stride(from: -d, through: d, by: 2) {
            let x = forward[offset + k]
            if x >= 0, x + (x - k) > best.x + best.y {
                best = (x, x - k)
            }
        }
        return split(best, best, n: n, m: m, aBase: aBase, bBase: bBase)
    }

    /// Picks an end of the snake from `first` to `last` that is not a corner of the graph.
    private static func split(
        _ first: (Int, Int), _ last: (Int, Int), n: Int, m: Int, aBase: Int, bBase: Int
    ) -> (Int, Int) {
        for (x, y) in [first, last] where (x, y) != (0, 0) && (x, y) != (n, m) {
            return (aBase + x, bBase + y)
        }
        // Only a snake from corner to corner gets here, which means equal ranges, and the
        // caller trims those. Still, split somewhere that shrinks both halves.
        return (aBase + (n + 1) / 2, bBase)
    }

    /// Reorders each run of changes so that its deletions come before its insertions.
    private static func groupChanges(_ edits: [Edit]) -> [Edit] {
        var result: [Edit] = []
        result.reserveCapacity(edits.count)
        var insertions: [Edit] = []
        for edit in edits {
            switch edit {
            case .keep:
                result += insertions
                insertions.removeAll(keepingCapacity: true)
                result.append(edit)
            case .delete:
                result.append(edit)
            case .insert:
                insertions.append(edit)
            }
        }
        return result + insertions
    }
}
