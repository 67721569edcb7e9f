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

    @Option(help: ServerSettings.dataDir.help) var dataDir: String?
    @Option(help: ServerSettings.store.help) var store: String?
    @Option(help: ServerSettings.storePrefix.help) var storePrefix: String?
    @Option(help: ServerSettings.storeTimeout.help) var storeTimeout: String?
    @Option(help: ServerSettings.listen.help) var listen: String?

    @Flag(help: "Development mode: throwaway data in a temporary directory, a local agent and a 'try this' banner.")
    var dev = false

    @Option(help: ServerSettings.maxConfigSize.help) var maxConfigSize: String?
    @Option(help: ServerSettings.historyRetention.help) var historyRetention: Int?
    @Option(help: ServerSettings.compactionKeep.help) var compactionKeep: Int64?
    @Option(help: ServerSettings.compactionInterval.help) var compactionInterval: String?
    @Option(name: .customLong(ServerSettings.lockTTL.key), help: ServerSettings.lockTTL.help) var lockTTL: Int64?
    @Option(help: ServerSettings.logLevel.help) var logLevel: String?
    @Option(help: ServerSettings.joinToken.help) var joinToken: String?
    @Option(help: ServerSettings.heartbeatInterval.help) var heartbeatInterval: String?
    @Option(help: ServerSettings.metricsInterval.help) var metricsInterval: String?
    @Option(help: ServerSettings.jobHistory.help) var jobHistory: Int?
    @Option(help: ServerSettings.jobMaxAge.help) var jobMaxAge: String?
    @Option(help: ServerSettings.rootTokenFile.help) var rootTokenFile: String?
    @Option(name: .customLong(ServerSettings.rateLimitAPI.key), help: ServerSettings.rateLimitAPI.help) var rateLimitApi: Double?
    @Option(help: ServerSettings.rateLimitAuthFailures.help) var rateLimitAuthFailures: Double?
    @Option(help: ServerSettings.rateLimitEnroll.help) var rateLimitEnroll: Double?
    @Option(help: ServerSettings.auditRetention.help) var auditRetention: String?
    @Option(help: ServerSettings.maxWait.help) var maxWait: String?
    @Option(help: ServerSettings.requestHeadTimeout.help) var requestHeadTimeout: String?
    @Option(help: ServerSettings.requestBodyTimeout.help) var requestBodyTimeout: String?
    @Option(help: ServerSettings.idleTimeout.help) var idleTimeout: String?
    @Flag(name: .customLong(ServerSettings.plainHTTP.key), help: ServerSettings.plainHTTP.help) var plainHttp = false
    @Option(name: .customLong(ServerSettings.tlsName.key), help: ServerSettings.tlsName.help) var tlsNames: [String] = []
    @Option(help: ServerSettings.tlsCert.help) var tlsCert: String?
    @Option(help: ServerSettings.tlsKey.help) var tlsKey: String?
    @Option(name: .customLong(ServerSettings.nodeCertTTL.key), help: ServerSettings.nodeCertTTL.help) var nodeCertTtl: String?
    @Option(help: ServerSettings.secretKeyFile.help) var secretKeyFile: String?

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
        ServerSettings.secretKeyFile.value(secretKeyFile, try config.map { try ServerConfigFile(path: $0) } ?? ServerConfigFile())
    }

    func validate() throws {
        _ = try resolved()
    }

    /// The settings in effect: flags, then the config file, then the defaults (`ServerSettings`).
    func resolved() throws -> ServerConfiguration {
        let file = try config.map { try ServerConfigFile(path: $0) } ?? ServerConfigFile()
        var configuration = ServerConfiguration()
        (configuration.host, configuration.port) = try Self.parseListen(ServerSettings.listen.value(listen, file) ?? "")
        if let directory = ServerSettings.dataDir.value(dataDir, file) { configuration.dataDirectory = directory }
        if dev, dataDir ?? file[ServerSettings.dataDir.key] == nil {
            configuration.dataDirectory = FileManager.default.temporaryDirectory
                .appendingPathComponent("capstan-dev-\(UUID().uuidString.prefix(8).lowercased())").path
        }
        try resolveStore(&configuration, file)
        try resolveRetention(&configuration, file)
        try resolveTimers(&configuration, file)
        try resolveTokens(&configuration, file)
        try resolveLimits(&configuration, file)
        try resolveTLS(&configuration, file)
        let level = ServerSettings.logLevel.value(logLevel, file) ?? ""
        guard let parsedLevel = Logger.Level(rawValue: level) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical; got \(level)")
        }
        configuration.logLevel = parsedLevel
        return configuration
    }

    /// Where the data lives: `--store`, and on etcd its prefix and timeout.
    private func resolveStore(_ configuration: inout ServerConfiguration, _ file: ServerConfigFile) throws {
        if let text = ServerSettings.store.value(store, file) {
            do { configuration.store = try StoreLocation(parsing: text) } catch { throw ValidationError("--store: \(error.message)") }
        }
        let onEtcd: Bool
        if case .etcd = configuration.storeLocation { onEtcd = true } else { onEtcd = false }
        for (setting, given) in [(ServerSettings.storePrefix, storePrefix), (ServerSettings.storeTimeout, storeTimeout)]
        where !onEtcd && (given ?? file[setting.key]) != nil {
            throw ValidationError("\(setting.flag) applies only to an etcd store (--store etcd://HOST:PORT)")
        }
        if let prefix = ServerSettings.storePrefix.value(storePrefix, file) {
            do { configuration.storePrefix = try StoreLocation.normalizedPrefix(prefix) } catch {
                throw ValidationError("--store-prefix: \(error.message)")
            }
        }
        configuration.storeTimeout = try Self.duration(ServerSettings.storeTimeout, storeTimeout, file)
    }

    /// How much is kept: config sizes and versions, store revisions, jobs, the audit log.
    private func resolveRetention(_ configuration: inout ServerConfiguration, _ file: ServerConfigFile) throws {
        do { configuration.config.maxContentSize = try ByteSize.parse(ServerSettings.maxConfigSize.value(maxConfigSize, file) ?? "") } catch {
            throw ValidationError("--max-config-size: \(error.message)")
        }
        configuration.config.historyRetention = try Self.integer(ServerSettings.historyRetention, historyRetention, file, minimum: 1)
        configuration.compactionKeep = try Self.integer(ServerSettings.compactionKeep, compactionKeep, file, minimum: 1)
        configuration.jobRetention = JobService.Retention(
            count: try Self.integer(ServerSettings.jobHistory, jobHistory, file, minimum: 1),
            age: try Self.duration(ServerSettings.jobMaxAge, jobMaxAge, file, minimum: .seconds(60)))
        configuration.auditRetention = try Self.duration(ServerSettings.auditRetention, auditRetention, file, minimum: .seconds(60))
    }

    /// Intervals and deadlines: compaction, locks, heartbeats, metrics, long polls, requests.
    private func resolveTimers(_ configuration: inout ServerConfiguration, _ file: ServerConfigFile) throws {
        configuration.compactionInterval = try Self.duration(ServerSettings.compactionInterval, compactionInterval, file)
        configuration.lockTTL = try Self.integer(ServerSettings.lockTTL, lockTTL, file, minimum: 1, unit: " second")
        let heartbeat = heartbeatInterval ?? file[ServerSettings.heartbeatInterval.key] ?? (dev ? ServerSettings.devHeartbeatInterval : nil)
        configuration.heartbeatInterval = try Self.duration(ServerSettings.heartbeatInterval, heartbeat, file, minimum: .milliseconds(50))
        configuration.metricsInterval = try Self.duration(ServerSettings.metricsInterval, metricsInterval, file, minimum: .milliseconds(50))
        configuration.config.maxWait = try Self.duration(ServerSettings.maxWait, maxWait, file)
        configuration.requestHeadTimeout = try Self.duration(ServerSettings.requestHeadTimeout, requestHeadTimeout, file)
        configuration.requestBodyTimeout = try Self.duration(ServerSettings.requestBodyTimeout, requestBodyTimeout, file)
        configuration.idleTimeout = try Self.duration(ServerSettings.idleTimeout, idleTimeout, file, minimum: .seconds(1))
        configuration.nodeCertificateLifetime = try Self.duration(ServerSettings.nodeCertTTL, nodeCertTtl, file, minimum: .seconds(5))
    }

    /// The join token and the root token to create on the first start.
    private func resolveTokens(_ configuration: inout ServerConfiguration, _ file: ServerConfigFile) throws {
        if let token = ServerSettings.joinToken.value(joinToken, file) {
            guard token.count >= 16, token.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                throw ValidationError("--join-token must be at least 16 characters, without spaces")
            }
            configuration.joinToken = token
        }
        if let path = ServerSettings.rootTokenFile.value(rootTokenFile, file) {
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
    }

    /// Rate limits: requests per token, failed authentications and enrollments per address.
    private func resolveLimits(_ configuration: inout ServerConfiguration, _ file: ServerConfigFile) throws {
        func rate(_ setting: ServerSetting, _ value: Double?, burst: Double) throws -> RateLimiter.Limit {
            let rate = try value ?? file.double(setting.key) ?? Double(setting.defaultValue ?? "") ?? 0
            guard rate >= 0, rate.isFinite else { throw ValidationError("\(setting.flag) must be 0 or more requests per second; got \(rate)") }
            return rate == 0 ? .off : RateLimiter.Limit(rate: rate, burst: max(1, rate * burst))
        }
        configuration.limits.requests = try rate(ServerSettings.rateLimitAPI, rateLimitApi, burst: 2)
        configuration.limits.authFailures = try rate(ServerSettings.rateLimitAuthFailures, rateLimitAuthFailures, burst: 10)
        configuration.limits.enrollments = try rate(ServerSettings.rateLimitEnroll, rateLimitEnroll, burst: 10)
    }

    /// TLS: off (`--plain-http`, `--dev`), a given certificate, or one from the installation's CA.
    private func resolveTLS(_ configuration: inout ServerConfiguration, _ file: ServerConfigFile) throws {
        let plain = plainHttp || file[ServerSettings.plainHTTP.key] == "true"
        let certificate = ServerSettings.tlsCert.value(tlsCert, file)
        let key = ServerSettings.tlsKey.value(tlsKey, file)
        let names =
            tlsNames.isEmpty
            ? (file[ServerSettings.tlsName.key].map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? [])
            : tlsNames
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
    }

    /// A duration setting in effect (flag, file, default) of at least `minimum` (100 ms unless given).
    static func duration(
        _ setting: ServerSetting, _ flag: String?, _ file: ServerConfigFile, minimum: Duration = .milliseconds(100)
    ) throws -> Duration {
        try duration(setting.value(flag, file) ?? "", flag: setting.flag, minimum: minimum)
    }

    /// A whole-number setting in effect (flag, file, default) of at least `minimum`.
    static func integer<T: FixedWidthInteger>(
        _ setting: ServerSetting, _ flag: T?, _ file: ServerConfigFile, minimum: T, unit: String = ""
    ) throws -> T {
        let value = try flag ?? file.integer(setting.key) ?? T(setting.defaultValue ?? "") ?? minimum
        guard value >= minimum else { throw ValidationError("\(setting.flag) must be at least \(minimum)\(unit)") }
        return value
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
