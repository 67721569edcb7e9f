/// Limits and retention of the config service; every field has a default.
public struct ConfigServiceConfiguration: Sendable {
    /// Largest config content accepted, in bytes.
    public var maxContentSize: Int = 1 << 20
    /// Newest versions kept per key; the first version is kept too, the ones between are pruned
    /// as new ones are written.
    public var historyRetention: Int = 100
    /// Longest a long poll (`?wait=`) may block.
    public var maxWait: Duration = .seconds(600)

    public init() {}
}
