/// Sizes in bytes written with units: "512KiB", "1MB", "2GiB".
///
/// Decimal units (K, KB, M, MB, …) count in powers of 1000 and binary ones (KiB, MiB, …) in
/// powers of 1024. Units ignore case.
public enum ByteSize {
    private static let units: [(name: String, bytes: Int)] = [
        ("b", 1),
        ("k", 1_000), ("kb", 1_000), ("kib", 1 << 10),
        ("m", 1_000_000), ("mb", 1_000_000), ("mib", 1 << 20),
        ("g", 1_000_000_000), ("gb", 1_000_000_000), ("gib", 1 << 30),
        ("t", 1_000_000_000_000), ("tb", 1_000_000_000_000), ("tib", 1 << 40),
    ]

    /// Parses a whole number of bytes with an optional unit, e.g. "1048576", "512KiB", "10 MB".
    ///
    /// - Throws: `CapstanError` with code `invalidArgument` for empty, negative, fractional or
    ///   malformed text, an unknown unit, or a size that does not fit in `Int`.
    public static func parse(_ text: String) throws(CapstanError) -> Int {
        let trimmed = text.trimmingWhitespace
        guard !trimmed.isEmpty else {
            throw CapstanError(.invalidArgument, "size is empty: use e.g. \"1048576\", \"512KiB\" or \"1MB\"")
        }
        if trimmed.hasPrefix("-") {
            throw CapstanError(.invalidArgument, "size \(text.quotedExcerpt) is negative")
        }
        let digits = trimmed.prefix(while: \.isASCIIDigit)
        let unitName = trimmed.dropFirst(digits.count).trimmingWhitespace
        guard !digits.isEmpty else {
            throw CapstanError(.invalidArgument, "size \(text.quotedExcerpt) does not start with a number")
        }
        if unitName.hasPrefix(".") {
            throw CapstanError(.invalidArgument, "size \(text.quotedExcerpt) is not a whole number: use a smaller unit")
        }
        let multiplier: Int
        if unitName.isEmpty {
            multiplier = 1
        } else if let unit = units.first(where: { $0.name == unitName.lowercased() }) {
            multiplier = unit.bytes
        } else {
            throw CapstanError(
                .invalidArgument,
                "size \(text.quotedExcerpt) has unknown unit \(unitName.quoted): use B, KB, KiB, MB, MiB, GB, GiB, TB or TiB")
        }
        guard let number = Int(digits), case (let bytes, false) = number.multipliedReportingOverflow(by: multiplier) else {
            throw CapstanError(.invalidArgument, "size \(text.quotedExcerpt) is too large")
        }
        return bytes
    }

    /// Formats `bytes` exactly, in the unit that divides it evenly with the smallest number
    /// ("1MiB", "1MB", "2000KiB"), or in bytes when no unit does ("1536B").
    public static func format(_ bytes: Int) -> String {
        guard bytes > 0 else { return "\(bytes)B" }
        let candidates: [(name: String, bytes: Int)] = [
            ("TiB", 1 << 40), ("TB", 1_000_000_000_000), ("GiB", 1 << 30), ("GB", 1_000_000_000),
            ("MiB", 1 << 20), ("MB", 1_000_000), ("KiB", 1 << 10), ("KB", 1_000),
        ]
        let best = candidates
            .filter { bytes % $0.bytes == 0 }
            .min { bytes / $0.bytes < bytes / $1.bytes }
        guard let best else { return "\(bytes)B" }
        return "\(bytes / best.bytes)\(best.name)"
    }

    /// Formats `bytes` for reading at a glance, in binary units with one decimal ("434.2MiB",
    /// "23.5GiB"); below 1 KiB, in bytes ("512B"). Measurements (memory, disks, rates), not settings.
    public static func human(_ bytes: Int) -> String {
        let units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        guard bytes >= 1024 || bytes <= -1024 else { return "\(bytes)B" }
        var value = Double(bytes) / 1024
        var unit = 0
        // Rounded to one decimal first, so 1023.96KiB reads 1.0MiB rather than 1024.0KiB.
        while (abs(value) * 10).rounded() / 10 >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return String(format: "%.1f", value) + units[unit]
    }
}
