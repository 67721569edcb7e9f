#if canImport(Glibc)
    import Glibc
#endif

extension String {
    /// Whether the UTF-8 bytes of `needle` occur in this string's, compared as bytes: the
    /// simulated agents search every message they get, and `String.contains` costs far more.
    func containsBytes(of needle: String) -> Bool {
        var haystack = self
        var needle = needle
        return haystack.withUTF8 { bytes in
            needle.withUTF8 { pattern in
                guard let base = bytes.baseAddress, let patternBase = pattern.baseAddress, let first = pattern.first else {
                    return pattern.isEmpty
                }
                var index = 0
                while index + pattern.count <= bytes.count {
                    if bytes[index] == first, memcmp(base + index, patternBase, pattern.count) == 0 { return true }
                    index += 1
                }
                return false
            }
        }
    }
}
