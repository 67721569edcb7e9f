import Foundation
import Logging

/// Everything `capstan server` can be told; every field has a default.
public struct ServerConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    /// 0 picks a free port (tests); the bound port is reported through `onRunning`.
    public var port: Int = 8740
    /// Directory holding the SQLite store file (when `store` is nil).
    public var dataDirectory: String = "capstan-data"
    /// Where the data lives; nil is `capstan.sqlite` in `dataDirectory`.
    public var store: StoreLocation?
    /// Key prefix inside a shared etcd, so several installations can use one cluster.
    public var storePrefix: String = ""
    /// etcd: how long a member may take to answer before calls and the watch feed move on.
    public var storeTimeout: Duration = .seconds(10)
    public var config = ConfigServiceConfiguration()
    /// Store revisions kept for watch resume and reads at old revisions; older ones are compacted.
    public var compactionKeep: Int64 = 100_000
    public var compactionInterval: Duration = .seconds(60)
    /// Lease time to live, in seconds, of the locks that keep run-once work on one replica.
    public var lockTTL: Int64 = 10
    /// The token agents enroll with; nil makes the server generate one and print it.
    public var joinToken: String?
    /// How often agents send heartbeats; 3 missed make a node unhealthy.
    public var heartbeatInterval: Duration = .seconds(5)
    /// How often agents send host metrics.
    public var metricsInterval: Duration = .seconds(15)
    /// Finished jobs kept: at most this many, none older than this.
    public var jobRetention = JobService.Retention()
    public var logLevel: Logger.Level = .info
    /// The root API token bootstrap creates on the first start; nil generates one (printed once).
    public var rootToken: String?
    /// Rate limits per client address and per token.
    public var limits = AccessLimits()
    /// Every request head must arrive whole within this of its first byte (a connection's first
    /// head, of the connection opening).
    public var requestHeadTimeout: Duration = .seconds(10)
    /// Every request body must arrive whole within this of its head; else 408 and the connection closes.
    public var requestBodyTimeout: Duration = .seconds(30)
    /// A connection with no request in progress closes after this.
    public var idleTimeout: Duration = .seconds(60)
    /// Audit entries older than this are removed (the newest is always kept).
    public var auditRetention: Duration = .seconds(90 * 86_400)
    /// The keys secrets are encrypted under; nil: secrets are refused.
    public var secretKeyring: SecretKeyring?
    /// TLS on the API and agent connections; nil serves plain HTTP.
    public var tls: TLSSettings?
    /// How long a node's client certificate lasts; agents renew it when a third is left.
    public var nodeCertificateLifetime: Duration = .seconds(30 * 86_400)

    public init() {}

    /// The store location in effect.
    public var storeLocation: StoreLocation {
        store ?? .sqlite(path: URL(fileURLWithPath: dataDirectory).appendingPathComponent("capstan.sqlite").path)
    }
}
