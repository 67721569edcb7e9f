@testable import CapstanCore

/// The error `format` raises for `content`, or nil when it parses.
func contentError(_ format: ConfigFormat, _ content: String) -> CapstanError? {
    do {
        _ = try format.parse(content)
        return nil
    } catch {
        return error
    }
}
