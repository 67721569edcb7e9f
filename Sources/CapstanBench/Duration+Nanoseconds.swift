extension Duration {
    /// Whole nanoseconds, for latency arithmetic on plain integers.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// Fractional seconds.
    var seconds: Double {
        Double(nanoseconds) / 1e9
    }
}
