/// Durations written as Go writes them: "250ms", "30s", "1m30s", "1.5h".
public enum DurationParser {
    private static let units: [(name: String, nanoseconds: Int64)] = [
        ("ns", 1), ("us", 1_000), ("µs", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000),
        ("m", 60_000_000_000), ("h", 3_600_000_000_000),
    ]

    /// Parses a sequence of numbers with units (ns, us, ms, s, m, h), or a bare whole number of
    /// seconds. Surrounding whitespace is ignored.
    ///
    /// - Throws: `CapstanError` with code `invalidArgument` for empty, negative or malformed text.
    public static func parse(_ text: String) throws(CapstanError) -> Duration {
        let trimmed = text.trimmingWhitespace
        guard !trimmed.isEmpty else {
            throw CapstanError(.invalidArgument, "duration is empty: use e.g. \"30s\", \"1m30s\" or \"250ms\"")
        }
        if trimmed.hasPrefix("-") {
            throw CapstanError(.invalidArgument, "duration \(text.quotedExcerpt) is negative")
        }
        if trimmed.allSatisfy(\.isASCIIDigit) {
            guard let seconds = Int64(trimmed), seconds <= Int64.max / 1_000_000_000 else {
                throw CapstanError(.invalidArgument, "duration \(text.quotedExcerpt) is too large")
            }
            return .seconds(seconds)
        }
        var total: Int64 = 0
        var rest = Substring(trimmed)
        while !rest.isEmpty {
            let whole = rest.prefix(while: \.isASCIIDigit)
            rest = rest.dropFirst(whole.count)
            var fraction: Substring = ""
            if rest.first == "." {
                fraction = rest.dropFirst().prefix(while: \.isASCIIDigit)
                rest = rest.dropFirst(1 + fraction.count)
            }
            guard !whole.isEmpty || !fraction.isEmpty else {
                throw CapstanError(
                    .invalidArgument,
                    "duration \(text.quotedExcerpt) has \(String(rest.prefix(1)).quoted) where a number should be")
            }
            let unitName = rest.prefix { !$0.isASCIIDigit && $0 != "." }
            rest = rest.dropFirst(unitName.count)
            guard !unitName.isEmpty else {
                throw CapstanError(
                    .invalidArgument, "duration \(text.quotedExcerpt) is missing a unit after \(String(whole).quoted): use ns, us, ms, s, m or h")
            }
            guard let unit = units.first(where: { $0.name == unitName }) else {
                throw CapstanError(
                    .invalidArgument, "duration \(text.quotedExcerpt) has unknown unit \(String(unitName).quoted): use ns, us, ms, s, m or h")
            }
            guard let part = nanoseconds(whole: whole, fraction: fraction, unit: unit.nanoseconds),
                case (let sum, false) = total.addingReportingOverflow(part)
            else {
                throw CapstanError(.invalidArgument, "duration \(text.quotedExcerpt) is too large")
            }
            total = sum
        }
        return .nanoseconds(total)
    }

    /// `whole.fraction` units in nanoseconds, or nil on overflow.
    private static func nanoseconds(whole: Substring, fraction: Substring, unit: Int64) -> Int64? {
        guard let wholeValue = whole.isEmpty ? 0 : Int64(whole),
            case (let wholeNanoseconds, false) = wholeValue.multipliedReportingOverflow(by: unit)
        else { return nil }
        // A unit is at most 3.6e12 ns, so 7 fraction digits already reach below a nanosecond.
        var fractionNanoseconds: Int64 = 0
        var scale = unit
        for digit in fraction.prefix(12) {
            fractionNanoseconds += Int64(digit.wholeNumberValue ?? 0) * scale / 10
            scale /= 10
            if scale == 0 { break }
        }
        let (sum, overflow) = wholeNanoseconds.addingReportingOverflow(fractionNanoseconds)
        return overflow ? nil : sum
    }

    /// Formats `duration` the way `parse` reads it, largest units first: "1h30m", "1m30s",
    /// "1.5s", "250ms", "0s".
    public static func format(_ duration: Duration) -> String {
        if duration < .zero {
            return "-" + format(.zero - duration)
        }
        let (seconds, attoseconds) = duration.components
        let nanoseconds = attoseconds / 1_000_000_000
        if seconds == 0 {
            switch nanoseconds {
            case 0: return "0s"
            case _ where nanoseconds % 1_000_000 == 0: return "\(nanoseconds / 1_000_000)ms"
            case _ where nanoseconds % 1_000 == 0: return "\(nanoseconds / 1_000)us"
            default: return "\(nanoseconds)ns"
            }
        }
        var text = ""
        if seconds >= 3600 {
            text += "\(seconds / 3600)h"
        }
        if seconds % 3600 >= 60 {
            text += "\(seconds % 3600 / 60)m"
        }
        let remainder = seconds % 60
        if remainder > 0 || nanoseconds > 0 {
            text += "\(remainder)"
            if nanoseconds > 0 {
                var digits = String(nanoseconds)
                digits = String(repeating: "0", count: 9 - digits.count) + digits
                while digits.hasSuffix("0") {
                    digits.removeLast()
                }
                text += "." + digits
            }
            text += "s"
        }
        return text
    }
}

extension Duration {
    /// Whole milliseconds (fractions dropped).
    public var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}

extension Duration {
    /// Seconds, with fractions, for `Date` arithmetic.
    public var timeInterval: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
