import Foundation
import Testing

@testable import CapstanCLI

/// Every server setting is defined once, in `ServerSettings`: `--help`, the settings file's
/// keys, the defaults taken and docs/server.md must all agree with it.
@Suite("Server settings")
struct ServerSettingsTests {
    /// The rows of docs/server.md's settings table, by flag: the default column's text.
    static func documentedDefaults() throws -> [String: String] {
        let page = DocsLinkTests.root.appendingPathComponent("docs/server.md")
        var defaults: [String: String] = [:]
        for line in try String(contentsOf: page, encoding: .utf8).split(separator: "\n") where line.hasPrefix("| `--") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 3 else { continue }
            // A row may name two flags: `--tls-cert FILE`, `--tls-key FILE`.
            for flag in cells[0].split(separator: ",") {
                let name = flag.trimmingCharacters(in: CharacterSet(charactersIn: " `")).split(separator: " ").first.map(String.init) ?? ""
                defaults[name] = cells[1]
            }
        }
        return defaults
    }

    @Test func docsListEverySettingWithItsDefault() throws {
        let documented = try Self.documentedDefaults()
        for setting in ServerSettings.all {
            let row = try #require(documented[setting.flag], "docs/server.md has no row for \(setting.flag)")
            if let value = setting.defaultValue {
                #expect(row.contains("`\(value)`"), "docs/server.md gives \(setting.flag) the default \(row), the server \(value)")
            }
        }
        let known = Set(ServerSettings.all.map(\.flag) + ["--config", "--dev"])
        for flag in documented.keys {
            #expect(known.contains(flag), "docs/server.md documents \(flag), which the server does not take")
        }
    }

    @Test func helpGivesEachSettingsDefault() throws {
        let help = ServerCommand.helpMessage(columns: 10_000)
        for setting in ServerSettings.all {
            #expect(help.contains(setting.flag), "--help leaves out \(setting.flag)")
            #expect(help.contains("(default: \(setting.defaultNote ?? setting.defaultValue ?? "none"))"), "--help of \(setting.flag)")
        }
    }

    /// With nothing given, the configuration takes each setting's default.
    @Test func defaultsAreTheCatalogs() throws {
        let configuration = try ServerCommand.parse([]).resolved()
        #expect(configuration.port == 8740)
        #expect(configuration.dataDirectory == ServerSettings.dataDir.defaultValue)
        #expect(configuration.heartbeatInterval == .seconds(5))
        #expect(configuration.config.historyRetention == 100)
        #expect(configuration.compactionKeep == 100_000)
        #expect(configuration.lockTTL == 10)
        #expect(configuration.requestBodyTimeout == .seconds(30))
        #expect(configuration.jobRetention.count == 1000)
        let dev = try ServerCommand.parse(["--dev"]).resolved()
        #expect(dev.heartbeatInterval == .seconds(1))
        #expect(dev.tls == nil)
    }
}
