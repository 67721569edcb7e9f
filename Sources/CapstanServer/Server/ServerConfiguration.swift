import Logging

/// Everything `capstan server` can be told; every field has a default.
public struct ServerConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    /// 0 picks a free port (tests); the bound port is reported through `onRunning`.
    public var port: Int = 8740
    /// Directory holding the SQLite store file.
    public var dataDirectory: String = "capstan-data"
    public var config = ConfigServiceConfiguration()
    /// Store revisions kept for watch resume and reads at old revisions; older ones are compacted.
    public var compactionKeep: Int64 = 100_000
    public var compactionInterval: Duration = .seconds(60)
    public var logLevel: Logger.Level = .info

    public init() {}
}
