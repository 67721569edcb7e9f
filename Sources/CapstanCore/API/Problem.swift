/// An RFC 9457 problem document, as every API error is answered (`application/problem+json`).
public struct Problem: Codable, Sendable, Hashable, Error {
    public var type: String
    public var title: String
    public var status: Int
    public var detail: String
    /// Stable machine-readable code, e.g. `invalid_content`.
    public var code: String
    public var line: Int?
    public var column: Int?
    /// For `compacted`: the oldest revision still available.
    public var compactRevision: Int64?

    public init(
        type: String = "about:blank", title: String, status: Int, detail: String, code: String,
        line: Int? = nil, column: Int? = nil, compactRevision: Int64? = nil
    ) {
        self.type = type
        self.title = title
        self.status = status
        self.detail = detail
        self.code = code
        self.line = line
        self.column = column
        self.compactRevision = compactRevision
    }
}
