/// Integers written as ASCII digits straight into a byte buffer: store keys and records carry
/// several per write, and `String(Int)` plus padding and concatenation allocated for each.
enum ASCIIDecimal {
    /// Appends `value` in decimal, left-padded with zeros to `width` digits (a negative value
    /// gets its sign before the digits and is not padded).
    static func append(_ value: Int64, width: Int = 0, to bytes: inout [UInt8]) {
        assert(value >= 0 || width == 0, "a negative number is not zero-padded")
        if value < 0 {
            bytes.append(UInt8(ascii: "-"))
            bytes += String(value.magnitude).utf8
            return
        }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[19 - count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                count += 1
            } while rest > 0
            for _ in count..<max(count, min(width, 20)) { bytes.append(UInt8(ascii: "0")) }
            bytes.append(contentsOf: buffer[(20 - count)...])
        }
    }

    /// `value` as text, zero-padded to `width` digits.
    static func text(_ value: Int64, width: Int = 0) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(max(width, 20))
        append(value, width: width, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}
