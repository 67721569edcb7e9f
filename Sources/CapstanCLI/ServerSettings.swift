import ArgumentParser

/// One server setting, defined once: its long flag (which is also its key in a `--config` file),
/// its default, and what it does. `capstan server --help`, the settings file's known keys and
/// the resolved configuration all read it from here; docs/server.md lists the same (a test
/// compares them).
struct ServerSetting: Sendable {
    /// The flag without its dashes, and the settings file's key.
    let key: String
    /// The value taken when neither the flag nor the file gives one; nil when there is none.
    let defaultValue: String?
    /// How the default reads in `--help` when it is not just the value.
    let defaultNote: String?
    /// What it does, one sentence without the default.
    let summary: String

    init(_ key: String, default defaultValue: String? = nil, note defaultNote: String? = nil, _ summary: String) {
        self.key = key
        self.defaultValue = defaultValue
        self.defaultNote = defaultNote
        self.summary = summary
    }

    var flag: String { "--" + key }

    /// The `--help` text: what it does, then its default.
    var help: ArgumentHelp {
        ArgumentHelp("\(summary) (default: \(defaultNote ?? defaultValue ?? "none")).")
    }

    /// The setting in effect: the flag, else the settings file, else the default.
    func value(_ flag: String?, _ file: ServerConfigFile) -> String? {
        flag ?? file[key] ?? defaultValue
    }
}

/// Every setting of `capstan server`, in the order `--help` and docs/server.md give them.
enum ServerSettings {
    static let dataDir = ServerSetting(
        "data-dir", default: "./capstan-data", note: "./capstan-data; with --dev a temporary directory",
        "Directory for the SQLite store, kept 0700 with its files 0600")
    static let store = ServerSetting(
        "store", note: "sqlite: and capstan.sqlite in --data-dir",
        "Where the data lives: sqlite:PATH or etcd://HOST:PORT[,HOST:PORT...]")
    static let storePrefix = ServerSetting(
        "store-prefix", note: "none; keys start with /capstan/", "Key prefix inside a shared etcd, e.g. /team-a")
    static let storeTimeout = ServerSetting(
        "store-timeout", default: "10s", "etcd: how long a member may take to answer before the server moves to another")
    static let listen = ServerSetting("listen", default: "127.0.0.1:8740", "Address to listen on, HOST:PORT")
    static let maxConfigSize = ServerSetting("max-config-size", default: "1MiB", "Largest config content accepted, e.g. 1MiB or 512KiB")
    static let historyRetention = ServerSetting(
        "history-retention", default: "100", "Newest versions kept per config key; its first version is kept too")
    static let compactionKeep = ServerSetting(
        "compaction-keep", default: "100000", "Store revisions kept for watch resume before compaction")
    static let compactionInterval = ServerSetting(
        "compaction-interval", default: "1m", "How often the store is compacted, e.g. 1m or 30s")
    static let lockTTL = ServerSetting(
        "lock-ttl", default: "10", "Seconds a dead replica keeps run-once work (compaction) locked before another takes it over")
    static let logLevel = ServerSetting(
        "log-level", default: "info", "Log level: trace, debug, info, notice, warning, error or critical")
    static let joinToken = ServerSetting(
        "join-token", note: "one generated on the first start, kept in the store so that every replica and restart uses it, and printed at start",
        "Token agents enroll with")
    static let heartbeatInterval = ServerSetting(
        "heartbeat-interval", default: "5s", note: "5s; with --dev 1s",
        "How often agents send heartbeats, e.g. 5s; 3 missed make a node unhealthy")
    /// The heartbeat interval of `--dev`: its local agent is healthy by the time the banner shows.
    static let devHeartbeatInterval = "1s"
    static let metricsInterval = ServerSetting(
        "metrics-interval", default: "15s", "How often agents send host metrics (CPU, load, memory, disks, network)")
    static let jobHistory = ServerSetting("job-history", default: "1000", "Finished jobs kept, at most; the oldest go first")
    static let jobMaxAge = ServerSetting(
        "job-max-age", default: "720h", note: "720h, 30 days", "Finished jobs older than this are removed, e.g. 720h")
    static let rootTokenFile = ServerSetting(
        "root-token-file", note: "$CAPSTAN_ROOT_TOKEN, else a generated one, printed once",
        "File holding the root API token to create on the first start; ignored once the installation has its root token")
    static let rateLimitAPI = ServerSetting(
        "rate-limit-api", default: "500", note: "500; 0 turns it off", "API requests per second per token; bursts of twice that pass")
    static let rateLimitAuthFailures = ServerSetting(
        "rate-limit-auth-failures", default: "1", note: "1; 0 turns it off",
        "Failed authentications per second per client address; bursts of 10 times that")
    static let rateLimitEnroll = ServerSetting(
        "rate-limit-enroll", default: "5", note: "5; 0 turns it off", "Agent enrollments per second per client address; bursts of 10 times that")
    static let auditRetention = ServerSetting(
        "audit-retention", default: "2160h", note: "2160h, 90 days", "Audit entries older than this are removed, e.g. 2160h")
    static let maxWait = ServerSetting(
        "max-wait", default: "10m", "The longest a long poll blocks; longer waits are cut to it, e.g. 10m")
    static let requestHeadTimeout = ServerSetting(
        "request-head-timeout", default: "10s",
        "Every request head must arrive whole within this of its first byte (a connection's first, of the connection opening), e.g. 10s")
    static let requestBodyTimeout = ServerSetting(
        "request-body-timeout", default: "30s",
        "Every request body must arrive whole within this of its head, else 408 and the connection closes, e.g. 30s")
    static let idleTimeout = ServerSetting(
        "idle-timeout", default: "60s", "A connection with no request in progress is closed after this, e.g. 60s")
    static let plainHTTP = ServerSetting(
        "plain-http", note: "off; with --dev on",
        "Serve plain HTTP instead of TLS: only behind a TLS-terminating proxy or on a trusted network")
    static let tlsName = ServerSetting(
        "tls-name", note: "none; localhost, the loopback addresses, the host name and the listen address are always in",
        "A DNS name or IP address clients reach this server by, put in its certificate; repeat for more (in a settings file: comma-separated)")
    static let tlsCert = ServerSetting(
        "tls-cert", note: "none: a certificate from the installation's CA",
        "Serve this certificate chain (PEM file) instead of one from the installation's CA; clients and agents trust its last certificate")
    static let tlsKey = ServerSetting("tls-key", "The private key (PEM file) of --tls-cert")
    static let nodeCertTTL = ServerSetting(
        "node-cert-ttl", default: "720h", note: "720h, 30 days",
        "How long a node's client certificate lasts; agents renew it when a third is left, e.g. 720h")
    static let secretKeyFile = ServerSetting(
        "secret-key-file",
        note: "$CAPSTAN_SECRET_KEY, else secret.key in the data directory, created on the first start; an etcd store has none: give every replica the same file",
        "File of the key secrets, the join token and the CA's key are encrypted under, mode 0600")

    static let all: [ServerSetting] = [
        dataDir, store, storePrefix, storeTimeout, listen, maxConfigSize, historyRetention, compactionKeep, compactionInterval, lockTTL,
        logLevel, joinToken, heartbeatInterval, metricsInterval, jobHistory, jobMaxAge, rootTokenFile, rateLimitAPI,
        rateLimitAuthFailures, rateLimitEnroll, auditRetention, maxWait, requestHeadTimeout, requestBodyTimeout, idleTimeout, plainHTTP,
        tlsName, tlsCert, tlsKey, nodeCertTTL, secretKeyFile,
    ]
}
