import Foundation
import NIOCore

/// The fields of an `application/x-www-form-urlencoded` body, as browsers send forms.
struct FormFields: Sendable {
    private(set) var values: [String: String] = [:]

    init(_ body: ByteBuffer) {
        for pair in String(buffer: body).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.decode(parts[0]) else { continue }
            // A field sent twice keeps its first value: a later copy cannot override it.
            if values[name] == nil { values[name] = parts.count > 1 ? Self.decode(parts[1]) ?? "" : "" }
        }
    }

    subscript(_ name: String) -> String? { values[name] }

    private static func decode(_ text: Substring) -> String? {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}
