import CapstanAgent
import CapstanClient
import CapstanCore
import CapstanServer
import Foundation
import Logging
import Synchronization

/// What `--dev` adds to a server: a local agent (node `dev`, writing templates under
/// `DATA/files`), the root token saved for the CLI, a console link that logs in once, and a
/// "try this" banner, printed once the local agent is healthy.
final class DevMode: Sendable {
    let files: String
    let dataDirectory: String
    let store: String
    let throwaway: Bool
    let logger: Logger
    /// The local agent, until the server stops.
    private let agent = Mutex<Task<Void, Never>?>(nil)

    init(dataDirectory: String, store: String, throwaway: Bool, logger: Logger) {
        self.dataDirectory = dataDirectory
        self.files = URL(fileURLWithPath: dataDirectory).appendingPathComponent("files").path
        self.store = store
        self.throwaway = throwaway
        var agentLogger = logger
        agentLogger[metadataKey: "component"] = "agent"
        self.logger = agentLogger
    }

    /// Starts the local agent and prints the banner once it is in.
    func start(_ started: CapstanServer.Started, address: String) async {
        try? FileManager.default.createDirectory(atPath: files, withIntermediateDirectories: true)
        let local = address.replacingOccurrences(of: "0.0.0.0", with: "127.0.0.1")
        let (rootToken, saved) = rememberRootToken(started.rootToken, server: local)
        var console = "\(address)/ui/ (log in with an API token)"
        if let rootToken, let code = await started.consoleLoginCode(for: rootToken) {
            console = "\(address)/ui/login?code=\(code)\n  (logs in once, as root; afterwards log in with the token)"
        }
        let banner = Self.banner(
            address: address, store: store, throwaway: throwaway, joinToken: started.joinToken, files: files, console: console,
            rootToken: started.rootToken, savedIn: saved)
        var configuration = AgentConfiguration(
            server: local, joinToken: started.joinToken, dataDirectory: URL(fileURLWithPath: dataDirectory).appendingPathComponent("agent").path,
            name: "dev")
        configuration.allowedPaths = [files]
        configuration.labels = ["env": "dev"]
        let logger = self.logger
        let agent = Agent(configuration: configuration, logger: logger)
        self.agent.withLock { task in
            task = Task {
                // The banner comes once the local agent is in (healthy): its first writes are
                // done by then, so the revisions a fresh dev server shows are the same every time.
                let announce = Task { await Self.announce(banner, once: local, token: rootToken) }
                do { try await agent.run() } catch { logger.error("the local agent stopped", metadata: ["error": "\(error)"]) }
                announce.cancel()
                await agent.shutdown()
            }
        }
    }

    /// Stops the local agent (and its writes into the data directory), before a throwaway
    /// directory is removed.
    func stop() async {
        guard let task = agent.withLock({ $0 }) else { return }
        task.cancel()
        await task.value
    }

    /// The root token the CLI will use, saved for this server when this start made it (it
    /// becomes the current server); a reused data dir's token is the one saved before.
    private func rememberRootToken(_ token: String?, server: String) -> (token: String?, savedIn: String?) {
        let server = CapstanClient(server: server).server
        guard let token else { return ((try? Credentials.load())?.servers[server]?.token, nil) }
        do {
            try Credentials.remember(server: server, token: token)
            return (token, Credentials.path)
        } catch {
            logger.warning("the root token was not saved for the CLI", metadata: ["error": "\(error)"])
            return (token, nil)
        }
    }

    /// Prints `banner` once node `dev` is healthy (or after 15 s).
    private static func announce(_ banner: String, once server: String, token: String?) async {
        let client = CapstanClient(server: server, author: "dev", token: token)
        let deadline = ContinuousClock.now + .seconds(15)
        while !Task.isCancelled, ContinuousClock.now < deadline, (try? await client.node("dev"))?.status != .healthy {
            try? await Task.sleep(for: .milliseconds(50))
        }
        if !Task.isCancelled { printLine(banner) }
    }

    static func banner(
        address: String, store: String, throwaway: Bool, joinToken: String, files: String, console: String, rootToken: String?, savedIn: String?
    ) -> String {
        let serverFlag = address == "http://127.0.0.1:8740" ? "" : " --server \(address)"
        let token =
            switch (rootToken, savedIn) {
            case (let token?, let path?): "Root token: \(token)\n  (saved in \(path); the commands below use it)"
            case (let token?, nil): "Root token: \(token)\n  (not saved: pass --token or set CAPSTAN_TOKEN)"
            default: "Root token: made on this data dir's first start"
            }
        return """
            Capstan dev server listening on \(address)
            Data\(throwaway ? " (throwaway)" : ""): \(store)
            Local agent: node "dev", allowed to write templates into \(files)
            \(token)
            Console: \(console)

            Try this in another terminal:
              capstan ns create dev\(serverFlag)
              printf 'port: 8080\\n' | capstan config put dev/app.yaml\(serverFlag)
              capstan config get dev/app.yaml\(serverFlag)
              printf 'listen {{port}};\\n' | capstan config put dev/app.conf.mustache\(serverFlag)
              capstan template put app --source dev/app.conf.mustache --data dev/app.yaml --dest \(files)/app.conf\(serverFlag)
              cat \(files)/app.conf
              capstan job run\(serverFlag) -- uname -sr
              capstan config watch dev/\(serverFlag)

            Other agents join with:
              capstan agent --server \(address) --join-token \(joinToken) --data-dir /tmp/capstan-agent
            """
    }
}
