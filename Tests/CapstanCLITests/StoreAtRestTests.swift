import CapstanStore
import CapstanTLS
import CapstanTesting
import Foundation
import Testing

/// What another local user finds in a server's and an agent's data directories, with real
/// processes: nothing they may read (0700, files 0600, an open installation tightened on
/// start), and, in the store's bytes, neither the join token nor the CA's private key.
@Suite("Store at rest", .timeLimit(.minutes(3)))
struct StoreAtRestTests {
    static func mode(_ path: String) throws -> Int {
        try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int ?? -1
    }

    /// The regular files directly in `directory`, with their modes.
    static func fileModes(_ directory: String) throws -> [String: Int] {
        var modes: [String: Int] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            let path = directory + "/" + name
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
                modes[name] = try mode(path)
            }
        }
        return modes
    }

    /// The secret part of the join token a server printed (`cj1-FINGERPRINT-SECRET`).
    static func joinToken(_ server: ServerProcess) async throws -> (full: String, secret: String) {
        let line = try await server.process.waitForLine { $0.contains("agents join with") }
        let full = String(try #require(line.firstMatch(of: /--join-token (\S+)/)?.output.1))
        return (full, String(full.dropFirst("cj1-".count + 64 + 1)))
    }

    /// Expects none of the store's files (`capstan.sqlite`, `-wal`, `-shm`) to hold `secret` or a
    /// PEM private key, as `strings` would show them.
    static func expectNoClearSecret(in directory: String, _ secret: String) throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("capstan.sqlite") }
        #expect(files.contains("capstan.sqlite"))
        for file in files {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + file))
            #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(file) holds the join token in clear")
            #expect(bytes.range(of: Data("PRIVATE KEY".utf8)) == nil, "\(file) holds a private key in clear")
        }
    }

    @Test func aFreshInstallationIsPrivateAndItsStoreHoldsNoSecretInClear() async throws {
        let home = try TemporaryDirectory(prefix: "capstan-at-rest")
        defer { home.remove() }
        let data = home.file("data")
        // An agent directory someone made open, with the agent's last template set in it.
        let agentData = home.file("agent")
        try FileManager.default.createDirectory(atPath: agentData, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        #expect(FileManager.default.createFile(atPath: agentData + "/templates.json", contents: Data("{}".utf8), attributes: [.posixPermissions: 0o644]))
        let token = try await ServerProcess.with(dataDirectory: data, tls: true) { server in
            let token = try await Self.joinToken(server)
            // While it runs, with the WAL and shared-memory files there.
            #expect(try Self.mode(data) == 0o700)
            let modes = try Self.fileModes(data)
            for name in ["capstan.sqlite", "capstan.sqlite-wal", "capstan.sqlite-shm", "secret.key", "ca.pem"] {
                #expect(modes[name] == 0o600, "\(name): \(modes[name].map { String($0, radix: 8) } ?? "missing")")
            }
            #expect(modes.values.allSatisfy { $0 == 0o600 }, "\(modes)")
            try Self.expectNoClearSecret(in: data, token.secret)

            let agent = try await AgentProcess.start(server: server.url, dataDirectory: agentData, name: "n1", joinToken: token.full)
            try await agent.stopping {
                #expect(try Self.mode(agentData) == 0o700)
                let modes = try Self.fileModes(agentData)
                #expect(modes["identity.json"] == 0o600 && modes["templates.json"] == 0o600, "\(modes)")
                #expect(modes.values.allSatisfy { $0 == 0o600 }, "\(modes)")
                #expect(agent.errorOutput.contains("the agent's data directory was open to other users"), "\(agent.errorOutput)")
            }
            return token
        }
        // And once stopped (the WAL copied into the file).
        try Self.expectNoClearSecret(in: data, token.secret)
    }

    @Test func anOpenInstallationIsTightenedOnStartAndSaysSoOnce() async throws {
        let home = try TemporaryDirectory(prefix: "capstan-tighten")
        defer { home.remove() }
        let data = home.file("data")
        try await ServerProcess.with(dataDirectory: data) { _ in }
        // As the landed version left it: 0755, files 0644 (the key file too).
        #expect(chmod(data, 0o755) == 0)
        for name in try Self.fileModes(data).keys { #expect(chmod(data + "/" + name, 0o644) == 0) }
        try await ServerProcess.with(dataDirectory: data) { server in
            #expect(try Self.mode(data) == 0o700)
            let modes = try Self.fileModes(data)
            #expect(modes.values.allSatisfy { $0 == 0o600 }, "\(modes)")
            #expect(modes["capstan.sqlite-wal"] == 0o600)
            let log = server.process.errorOutput
            #expect(log.contains("the data directory was open to other users: made it and its files the owner's only"), "\(log)")
            #expect(log.contains("\(data) 755 -> 700"), "\(log)")
            #expect(log.contains("\(data)/secret.key 644 -> 600"), "\(log)")
        }
        try await ServerProcess.with(dataDirectory: data) { server in
            #expect(!server.process.errorOutput.contains("open to other users"), "said again: \(server.process.errorOutput)")
        }
    }

    @Test func aStoreWithTheSecretsInClearIsSealedInPlaceOnStart() async throws {
        let home = try TemporaryDirectory(prefix: "capstan-migrate")
        defer { home.remove() }
        let data = home.file("data")
        let token = "legacy-join-token-0123456789"
        let authority = try CertificateAuthority.create()
        // The store as the landed version wrote it: the bare token, the CA's key in clear.
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        do {
            let store = try SQLiteStore(path: data + "/capstan.sqlite")
            _ = try await store.put("/capstan/join-token", Data(token.utf8))
            _ = try await store.put(
                "/capstan/tls/authority", try JSONEncoder().encode(["certificate": authority.certificatePEM, "key": authority.keyPEM]))
            store.close()
        }
        try await ServerProcess.with(dataDirectory: data, tls: true) { server in
            // The same token and the same CA as before.
            let printed = try await Self.joinToken(server)
            #expect(printed.secret == token)
            #expect(server.process.output.contains("CA fingerprint: \(authority.fingerprint)"), "\(server.process.output)")
            let log = server.process.errorOutput
            #expect(log.contains("sealed the join token, which the store held in clear,"), "\(log)")
            #expect(log.contains("sealed the CA's private key, which the store held in clear,"), "\(log)")
            #expect(log.contains("the store's history was compacted so that no older revision holds the secrets in clear"), "\(log)")
            let agent = try await AgentProcess.start(server: server.url, dataDirectory: home.file("agent"), name: "n1", joinToken: printed.full)
            try await agent.stopping {}
        }
        // Gone from the file's bytes too, history and free pages included.
        try Self.expectNoClearSecret(in: data, token)
        let store = try SQLiteStore(path: data + "/capstan.sqlite")
        defer { store.close() }
        for key in ["/capstan/join-token", "/capstan/tls/authority"] {
            let value = try #require(try await store.get(key)).value
            #expect(value.range(of: Data(token.utf8)) == nil, "\(key) still in clear")
            #expect(value.range(of: Data("PRIVATE KEY".utf8)) == nil, "\(key) still in clear")
        }
    }

    @Test func etcdReplicasSealWithTheirSharedKeyAndOneWithoutItStopsWithOneLine() async throws {
        try await EtcdProcess.with { etcd in
            let storeURL = "etcd://" + etcd.clientURL.dropFirst("http://".count)
            let token = try await ServerProcess.with(dataDirectory: nil, extraArguments: ["--store", storeURL], tls: true) { server in
                try await Self.joinToken(server).secret
            }
            // etcd's values, read as any etcd client reads them.
            let store = try await EtcdStore(endpoints: [etcd.clientURL], prefix: "")
            let values = try await store.range(RangeRequest(.prefix("/capstan/"))).kvs
            await store.shutdown()
            #expect(values.contains { $0.key == "/capstan/join-token" })
            for kv in values {
                #expect(kv.value.range(of: Data(token.utf8)) == nil, "\(kv.key) holds the join token in clear")
                #expect(kv.value.range(of: Data("PRIVATE KEY".utf8)) == nil, "\(kv.key) holds a private key in clear")
            }
            let server = ["server", "--listen", "127.0.0.1:0", "--plain-http", "--log-level", "warning", "--store", storeURL]
            let otherKey = Data(repeating: 7, count: 32).base64EncodedString()
            let stranger = try await CapstanBinary.run(server, environment: ["CAPSTAN_SECRET_KEY": otherKey], timeout: .seconds(20))
            #expect(stranger.status != 0)
            #expect(stranger.stderrLines.count == 1, "\(stranger.stderr)")
            #expect(stranger.stderr.hasPrefix("capstan: the join token in the store is sealed under secret key"), "\(stranger.stderr)")
            #expect(stranger.stderr.contains("which this server does not hold"), "\(stranger.stderr)")
            #expect(stranger.stderr.contains("give every replica the same secret key file"), "\(stranger.stderr)")
            let keyless = try await CapstanBinary.run(server, environment: ["CAPSTAN_SECRET_KEY": ""], timeout: .seconds(20))
            #expect(keyless.status != 0)
            #expect(keyless.stderr.contains("an etcd store has no default key file"), "\(keyless.stderr)")
        }
    }
}
