import ArgumentParser
import CapstanAgent
import CapstanClient
import CapstanCore
import CapstanServer
import Foundation
import Logging
import Synchronization

struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Run the Capstan server.",
        discussion: """
            Serves the HTTP API on --listen, keeping its data in one SQLite file in --data-dir, or \
            on an etcd cluster with --store etcd://HOST:PORT[,HOST:PORT...]. Several servers on one \
            etcd serve the same data (replicas). --dev runs a throwaway server with its data in a \
            fresh temporary directory. Settings can also come from --config FILE.

            Outside --dev the server speaks TLS: the first start creates the installation's own CA \
            (kept in the store), each start gives the server a certificate from it, and the CA's \
            fingerprint is printed with the join token that pins it. Agents get client certificates \
            at enrollment and connect over mutual TLS. --tls-cert/--tls-key serve a certificate of \
            your own instead; --plain-http turns TLS off (behind a TLS-terminating proxy).
            """,
        subcommands: [RotateKeyCommand.self])

    @Option(help: "Server settings file (YAML; keys are the long flag names). Flags given here win over it.")
    var config: String?

    @Option(help: "Directory for the SQLite store, kept 0700 with its files 0600 (default: ./capstan-data; with --dev a temporary directory).")
    var dataDir: String?

    @Option(help: "Where the data lives: sqlite:PATH (default: capstan.sqlite in --data-dir) or etcd://HOST:PORT[,HOST:PORT...].")
    var store: String?

    @Option(help: "Key prefix inside a shared etcd, e.g. /team-a (default: none; keys start with /capstan/).")
    var storePrefix: String?

    @Option(help: "etcd: how long a member may take to answer before the server moves to another, e.g. 10s (default: 10s).")
    var storeTimeout: String?

    @Option(help: "Address to listen on, HOST:PORT (default: 127.0.0.1:8740).") var listen: String?

    @Flag(help: "Development mode: throwaway data in a temporary directory and a 'try this' banner.")
    var dev = false

    @Option(help: "Largest config content accepted, e.g. 1MiB or 512KiB (default: 1MiB).") var maxConfigSize: String?

    @Option(help: "Newest versions kept per config key; its first version is kept too (default: 100).")
    var historyRetention: Int?

    @Option(help: "Store revisions kept for watch resume before compaction (default: 100000).")
    var compactionKeep: Int64?

    @Option(help: "How often the store is compacted, e.g. 1m or 30s (default: 1m).")
    var compactionInterval: String?

    @Option(help: "Seconds a dead replica keeps run-once work (compaction) locked before another takes it over (default: 10).")
    var lockTTL: Int64?

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical (default: info).")
    var logLevel: String?

    @Option(
        help: """
            Token agents enroll with (default: one generated on the first start, kept in the store so that \
            every replica and restart uses it, and printed at start).
            """)
    var joinToken: String?

    @Option(help: "How often agents send heartbeats, e.g. 5s; 3 missed make a node unhealthy (default: 5s).")
    var heartbeatInterval: String?

    @Option(help: "How often agents send host metrics (CPU, load, memory, disks, network) (default: 15s).")
    var metricsInterval: String?

    @Option(help: "Finished jobs kept, at most (default: 1000); the oldest go first.")
    var jobHistory: Int?

    @Option(help: "Finished jobs older than this are removed, e.g. 720h (default: 720h, 30 days).")
    var jobMaxAge: String?

    @Option(
        help: """
            File holding the root API token to create on the first start (default: $CAPSTAN_ROOT_TOKEN, else a             generated one, printed once). Ignored once the installation has its root token.
            """)
    var rootTokenFile: String?

    @Option(help: "API requests per second per token; bursts of twice that pass (default: 500; 0 turns it off).")
    var rateLimitApi: Double?

    @Option(help: "Failed authentications per second per client address; bursts of 10 times that (default: 1; 0 turns it off).")
    var rateLimitAuthFailures: Double?

    @Option(help: "Agent enrollments per second per client address; bursts of 10 times that (default: 5; 0 turns it off).")
    var rateLimitEnroll: Double?

    @Option(help: "Audit entries older than this are removed, e.g. 2160h (default: 2160h, 90 days).")
    var auditRetention: String?

    @Option(help: "The longest a long poll blocks; longer waits are cut to it, e.g. 10m (default: 10m).")
    var maxWait: String?

    @Option(help: "Every request head must arrive whole within this of its first byte (a connection's first, of the connection opening), e.g. 10s (default: 10s).")
    var requestHeadTimeout: String?

    @Option(help: "Every request body must arrive whole within this of its head, else 408 and the connection closes, e.g. 30s (default: 30s).")
    var requestBodyTimeout: String?

    @Option(help: "A connection with no request in progress is closed after this, e.g. 60s (default: 60s).")
    var idleTimeout: String?

    @Flag(help: "Serve plain HTTP instead of TLS (as --dev does): only behind a TLS-terminating proxy or on a trusted network.")
    var plainHttp = false

    @Option(
        name: .customLong("tls-name"),
        help: "A DNS name or IP address clients reach this server by, put in its certificate; repeat for more (localhost, the loopback addresses, the host name and the listen address are always in).")
    var tlsNames: [String] = []

    @Option(help: "Serve this certificate chain (PEM file) instead of one from the installation's CA; clients and agents trust its last certificate.")
    var tlsCert: String?

    @Option(help: "The private key (PEM file) of --tls-cert.")
    var tlsKey: String?

    @Option(help: "How long a node's client certificate lasts; agents renew it when a third is left, e.g. 720h (default: 720h).")
    var nodeCertTtl: String?

    @Option(
        help: """
            File of the key secrets, the join token and the CA's key are encrypted under, mode 0600 \
            (default: $CAPSTAN_SECRET_KEY, else secret.key in the data directory, created on the first \
            start; an etcd store has no default: give every replica the same file).
            """)
    var secretKeyFile: String?

    /// Where the secret key comes from: the environment, a given file (which must exist: a typo
    /// must not start a replica on a key of its own), the data directory's file (created on the
    /// first start), or nowhere.
    static func secretKeyring(file: String?, configuration: ServerConfiguration) throws -> SecretKeyring? {
        if let text = ProcessInfo.processInfo.environment["CAPSTAN_SECRET_KEY"], !text.isEmpty {
            return try SecretKeyring.parse(text, source: "CAPSTAN_SECRET_KEY")
        }
        if let file { return try SecretKeyring.load(path: file, create: false) }
        if let path = defaultSecretKeyFile(configuration) { return try SecretKeyring.load(path: path, create: true) }
        return nil
    }

    /// The data directory, when it holds the store (the default SQLite store), is the owner's
    /// only (0700, its files 0600), as etcd and Vault keep theirs: created so, or tightened once,
    /// saying so. A directory given with `--store sqlite:PATH` may be shared: only the store's
    /// own files are made private there (by the store).
    static func keepDataDirectoryPrivate(_ configuration: ServerConfiguration, logger: Logger) throws(CapstanError) {
        guard configuration.store == nil else { return }
        let tightened = try PrivateDirectory.prepare(configuration.dataDirectory)
        if !tightened.isEmpty {
            logger.warning(
                "the data directory was open to other users: made it and its files the owner's only",
                metadata: ["files": "\(tightened.joined(separator: ", "))"])
        }
    }

    /// `secret.key` beside an SQLite store; an etcd store has none.
    static func defaultSecretKeyFile(_ configuration: ServerConfiguration) -> String? {
        guard case .sqlite(let path) = configuration.storeLocation else { return nil }
        return URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("secret.key").path
    }

    /// The `--secret-key-file` in effect: the flag, else the settings file's.
    func secretKeyFileSetting() throws -> String? {
        try secretKeyFile ?? config.map { try ServerConfigFile(path: $0) }?["secret-key-file"]
    }

    func validate() throws {
        _ = try resolved()
    }

    /// The settings in effect: flags, then the config file, then the defaults.
    func resolved() throws -> ServerConfiguration {
        let file = try config.map { try ServerConfigFile(path: $0) } ?? ServerConfigFile()
        var configuration = ServerConfiguration()
        (configuration.host, configuration.port) = try Self.parseListen(listen ?? file["listen"] ?? "127.0.0.1:8740")
        let size = maxConfigSize ?? file["max-config-size"] ?? "1MiB"
        do { configuration.config.maxContentSize = try ByteSize.parse(size) } catch {
            throw ValidationError("--max-config-size: \(error.message)")
        }
        configuration.config.historyRetention = try historyRetention ?? file.integer("history-retention") ?? 100
        guard configuration.config.historyRetention >= 1 else { throw ValidationError("--history-retention must be at least 1") }
        configuration.compactionKeep = try compactionKeep ?? file.integer("compaction-keep") ?? 100_000
        guard configuration.compactionKeep >= 1 else { throw ValidationError("--compaction-keep must be at least 1") }
        configuration.compactionInterval = try Self.duration(
            compactionInterval ?? file["compaction-interval"] ?? "1m", flag: "--compaction-interval")
        configuration.lockTTL = try lockTTL ?? file.integer("lock-ttl") ?? 10
        guard configuration.lockTTL >= 1 else { throw ValidationError("--lock-ttl must be at least 1 second") }
        let level = logLevel ?? file["log-level"] ?? "info"
        guard let parsedLevel = Logger.Level(rawValue: level) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical; got \(level)")
        }
        configuration.logLevel = parsedLevel
        if let token = joinToken ?? file["join-token"] {
            guard token.count >= 16, token.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                throw ValidationError("--join-token must be at least 16 characters, without spaces")
            }
            configuration.joinToken = token
        }
        // --dev: 1 s, so that its local agent is healthy by the time the banner shows.
        configuration.heartbeatInterval = try Self.duration(
            heartbeatInterval ?? file["heartbeat-interval"] ?? (dev ? "1s" : "5s"), flag: "--heartbeat-interval",
            minimum: .milliseconds(50))
        let jobCount = try jobHistory ?? file.integer("job-history") ?? 1000
        guard jobCount >= 1 else { throw ValidationError("--job-history must be at least 1") }
        configuration.jobRetention = JobService.Retention(
            count: jobCount,
            age: try Self.duration(jobMaxAge ?? file["job-max-age"] ?? "720h", flag: "--job-max-age", minimum: .seconds(60)))
        configuration.metricsInterval = try Self.duration(
            metricsInterval ?? file["metrics-interval"] ?? "15s", flag: "--metrics-interval", minimum: .milliseconds(50))
        if let path = rootTokenFile ?? file["root-token-file"] {
            guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
                throw ValidationError("--root-token-file: cannot read \(path)")
            }
            configuration.rootToken = text.trimmingCharacters(in: .whitespacesAndNewlines)
        } else if let token = GlobalOptions.environment("CAPSTAN_ROOT_TOKEN") {
            configuration.rootToken = token
        }
        if let token = configuration.rootToken {
            guard token.count >= 16, token.count <= 256, token.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                throw ValidationError("the root token (--root-token-file or CAPSTAN_ROOT_TOKEN) must be 16 to 256 characters without spaces")
            }
        }
        func rate(_ value: Double?, _ name: String, _ fallback: Double, burst: Double) throws -> RateLimiter.Limit {
            let rate = try value ?? file.double(name) ?? fallback
            guard rate >= 0, rate.isFinite else { throw ValidationError("--\(name) must be 0 or more requests per second; got \(rate)") }
            return rate == 0 ? .off : RateLimiter.Limit(rate: rate, burst: max(1, rate * burst))
        }
        configuration.limits.requests = try rate(rateLimitApi, "rate-limit-api", 500, burst: 2)
        configuration.limits.authFailures = try rate(rateLimitAuthFailures, "rate-limit-auth-failures", 1, burst: 10)
        configuration.limits.enrollments = try rate(rateLimitEnroll, "rate-limit-enroll", 5, burst: 10)
        configuration.auditRetention = try Self.duration(
            auditRetention ?? file["audit-retention"] ?? "2160h", flag: "--audit-retention", minimum: .seconds(60))
        configuration.config.maxWait = try Self.duration(maxWait ?? file["max-wait"] ?? "10m", flag: "--max-wait", minimum: .milliseconds(100))
        configuration.requestHeadTimeout = try Self.duration(
            requestHeadTimeout ?? file["request-head-timeout"] ?? "10s", flag: "--request-head-timeout", minimum: .milliseconds(100))
        configuration.requestBodyTimeout = try Self.duration(
            requestBodyTimeout ?? file["request-body-timeout"] ?? "30s", flag: "--request-body-timeout", minimum: .milliseconds(100))
        configuration.idleTimeout = try Self.duration(idleTimeout ?? file["idle-timeout"] ?? "60s", flag: "--idle-timeout", minimum: .seconds(1))
        if let directory = dataDir ?? file["data-dir"] {
            configuration.dataDirectory = directory
        } else if dev {
            configuration.dataDirectory = FileManager.default.temporaryDirectory
                .appendingPathComponent("capstan-dev-\(UUID().uuidString.prefix(8).lowercased())").path
        }
        let plain = plainHttp || file["plain-http"] == "true"
        let certificate = tlsCert ?? file["tls-cert"]
        let key = tlsKey ?? file["tls-key"]
        let names = tlsNames.isEmpty ? (file["tls-name"].map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []) : tlsNames
        if (certificate == nil) != (key == nil) { throw ValidationError("--tls-cert and --tls-key go together: give both or neither") }
        if plain || dev, certificate != nil || !names.isEmpty {
            throw ValidationError("\(plain ? "--plain-http" : "--dev") serves plain HTTP: --tls-cert, --tls-key and --tls-name do not apply")
        }
        for name in names where name.isEmpty || name.contains(where: { $0 == " " || $0 == "/" }) {
            throw ValidationError("--tls-name must be a DNS name or an IP address; got \(name.debugDescription)")
        }
        if plain || dev {
            configuration.tls = nil
        } else if let certificate, let key {
            for (path, flag) in [(certificate, "--tls-cert"), (key, "--tls-key")] where !FileManager.default.isReadableFile(atPath: path) {
                throw ValidationError("\(flag): cannot read \(path)")
            }
            configuration.tls = .given(certificateFile: certificate, keyFile: key)
        } else {
            configuration.tls = .authority(names: names)
        }
        configuration.nodeCertificateLifetime = try Self.duration(
            nodeCertTtl ?? file["node-cert-ttl"] ?? "720h", flag: "--node-cert-ttl", minimum: .seconds(5))
        if let text = store ?? file["store"] {
            do { configuration.store = try StoreLocation(parsing: text) } catch { throw ValidationError("--store: \(error.message)") }
        }
        func requireEtcd(_ flag: String) throws {
            guard case .etcd = configuration.storeLocation else {
                throw ValidationError("\(flag) applies only to an etcd store (--store etcd://HOST:PORT)")
            }
        }
        if let prefix = storePrefix ?? file["store-prefix"] {
            try requireEtcd("--store-prefix")
            do { configuration.storePrefix = try StoreLocation.normalizedPrefix(prefix) } catch {
                throw ValidationError("--store-prefix: \(error.message)")
            }
        }
        if let timeout = storeTimeout ?? file["store-timeout"] {
            try requireEtcd("--store-timeout")
            configuration.storeTimeout = try Self.duration(timeout, flag: "--store-timeout")
        }
        return configuration
    }

    /// A duration setting of at least `minimum` (100 ms unless given).
    static func duration(_ text: String, flag: String, minimum: Duration = .milliseconds(100)) throws -> Duration {
        let duration: Duration
        do { duration = try DurationParser.parse(text) } catch { throw ValidationError("\(flag): \(error.message)") }
        guard duration >= minimum else { throw ValidationError("\(flag) must be at least \(Self.describe(minimum))") }
        return duration
    }

    static func describe(_ duration: Duration) -> String {
        let milliseconds = duration.milliseconds
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds)ms"
    }

    static func parseListen(_ text: String) throws -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":") else {
            throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:8740; got \(text)")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = "0.0.0.0" }
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--listen port must be 0-65535; got \(text)")
        }
        return (host, port)
    }

    func run() async throws {
        var resolved = try resolved()
        var logger = Logger(label: "capstan")
        logger.logLevel = resolved.logLevel
        DescriptorLimit.raise()
        do {
            try Self.keepDataDirectoryPrivate(resolved, logger: logger)
            resolved.secretKeyring = try Self.secretKeyring(file: try secretKeyFileSetting(), configuration: resolved)
        } catch let error as CapstanError {
            throw ValidationError(error.message)
        }
        let configuration = resolved
        let dev = self.dev
        let location = configuration.storeLocation
        let host = configuration.host
        // A throwaway directory goes when the dev server stops cleanly.
        let throwaway = dev && dataDir == nil && configuration.store == nil ? configuration.dataDirectory : nil
        defer {
            if let throwaway { try? FileManager.default.removeItem(atPath: throwaway) }
        }
        let storeText = Self.describe(location, prefix: configuration.storePrefix)
        let devMode = dev ? DevMode(dataDirectory: configuration.dataDirectory, store: storeText, throwaway: throwaway != nil, logger: logger) : nil
        do {
            try await CapstanServer.run(configuration: configuration, logger: logger) { started in
                let scheme = started.tls == nil ? "http" : "https"
                let address = "\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(started.port)"
                if let devMode {
                    await devMode.start(started, address: address)
                } else {
                    Self.printStart(started, address: address, store: storeText, configuration: configuration)
                }
            }
        } catch {
            await devMode?.stop()
            throw error
        }
        await devMode?.stop()
    }

    /// What a server (not `--dev`) prints once it listens: where, its CA, the root token when it
    /// made one, and how agents join.
    static func printStart(_ started: CapstanServer.Started, address: String, store: String, configuration: ServerConfiguration) {
        printLine("capstan server listening on \(address), data in \(store)")
        if let tls = started.tls {
            var line = "CA fingerprint: \(tls.anchorFingerprint)"
            // Beside an SQLite store, the CA certificate is also left as a file for the CLI.
            if case .sqlite = configuration.storeLocation {
                let path = URL(fileURLWithPath: configuration.dataDirectory).appendingPathComponent("ca.pem").path
                if (try? PrivateFile.replace(path, with: Data(tls.anchorPEM.utf8))) != nil {
                    line += " (certificate in \(path))"
                }
            }
            printLine(line)
        }
        if let token = started.rootToken {
            // A token the operator supplied is theirs already: it is not echoed into logs.
            if configuration.rootToken == nil {
                printLine("root token (shown this once; the server keeps only its hash): \(token)")
            } else {
                printLine("root token: the one given (--root-token-file or CAPSTAN_ROOT_TOKEN), set up now")
            }
            let pin = started.tls.map { " --ca-fingerprint \($0.anchorFingerprint)" } ?? ""
            printLine("log in with: capstan login --server \(address)\(pin)   (it reads the token from standard input)")
        }
        printLine("console: \(address)/ui/ (log in with an API token)")
        printLine("agents join with: capstan agent --server \(address) --join-token \(started.agentJoinToken)")
    }

    /// The store as the start-up line names it.
    static func describe(_ location: StoreLocation, prefix: String) -> String {
        switch location {
        case .sqlite(let path): URL(fileURLWithPath: path).deletingLastPathComponent().path
        case .etcd: prefix.isEmpty ? "\(location)" : "\(location) under \(prefix)"
        }
    }
}
