import Foundation

/// Number formatting shared by the progress lines and the report.
enum Format {
    static func perSecond(_ value: Double) -> String {
        String(format: "%.0f/s", value)
    }

    static func milliseconds(_ value: Double) -> String {
        String(format: "%.2f ms", value)
    }

    static func microseconds(_ value: Double?) -> String {
        value.map { String(format: "%.0f µs", $0) } ?? "n/a"
    }

    static func ratio(_ value: Double) -> String {
        String(format: "%.2f", value)
    }
}
