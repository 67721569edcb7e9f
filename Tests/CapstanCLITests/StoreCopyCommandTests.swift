import CapstanTesting
import Foundation
import Testing

/// `capstan store copy` with the real binary: a SQLite installation moved to etcd and back.
@Suite("Store copy command")
struct StoreCopyCommandTests {
    @Test func sqliteToEtcdAndBackKeepsConfigsAndHistory() async throws {
        let directory = try TemporaryDirectory(prefix: "capstan-copy")
        defer { directory.remove() }
        let history: String = try await ServerProcess.with(dataDirectory: directory.file("single")) { server in
            #expect(try await CapstanBinary.run(["ns", "create", "prod", "--server", server.url]).status == 0)
            for (content, comment) in [("port: 1\n", "first"), ("port: 2\n", "second")] {
                let put = try await CapstanBinary.run(
                    ["config", "put", "prod/app.yaml", "--comment", comment, "--server", server.url], stdin: content)
                #expect(put.status == 0, "\(put.stderr)")
            }
            return try await Self.history(server.url)
        }
        try await EtcdProcess.with { etcd in
            let store = "etcd://" + etcd.clientURL.dropFirst("http://".count)
            let sqlite = "sqlite:" + directory.file("single/capstan.sqlite")
            let there = try await CapstanBinary.run(["store", "copy", "--from", sqlite, "--to", store, "--to-prefix", "/moved"])
            #expect(there.status == 0, "\(there.stderr)")
            #expect(there.stdout.contains("verified: "), "\(there.stdout)")
            let checksum = try #require(there.stdout.split(separator: " ").first { $0.hasPrefix("sha256:") })

            // The join token (and secrets) are sealed under the installation's key: it moves too.
            let keyFile = directory.file("single/secret.key")
            try await ServerProcess.with(
                dataDirectory: nil, extraArguments: ["--store", store, "--store-prefix", "/moved", "--secret-key-file", keyFile]
            ) { server async throws -> Void in
                #expect(try await CapstanBinary.run(["config", "get", "prod/app.yaml", "--server", server.url]).stdout == "port: 2\n")
                #expect(try await Self.history(server.url) == history)
            }

            // Copying again into the same place is refused and changes nothing.
            let again = try await CapstanBinary.run(["store", "copy", "--from", sqlite, "--to", store, "--to-prefix", "/moved"])
            #expect(again.status == 1)
            #expect(again.stderr.contains("already holds"), "\(again.stderr)")

            let back = try await CapstanBinary.run([
                "store", "copy", "--from", store, "--from-prefix", "/moved", "--to", "sqlite:" + directory.file("back/capstan.sqlite"),
            ])
            #expect(back.status == 0, "\(back.stderr)")
            #expect(back.stdout.contains(String(checksum)), "the round trip changed the data: \(back.stdout)")
        }
        try FileManager.default.copyItem(atPath: directory.file("single/secret.key"), toPath: directory.file("back/secret.key"))
        #expect(chmod(directory.file("back/secret.key"), 0o600) == 0)
        try await ServerProcess.with(dataDirectory: directory.file("back")) { server async throws -> Void in
            #expect(try await Self.history(server.url) == history)
        }
    }

    /// `config history` without the revision column, which each store numbers its own way.
    static func history(_ server: String) async throws -> String {
        let result = try await CapstanBinary.run(["config", "history", "prod/app.yaml", "-o", "json", "--server", server])
        let items = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
        return items.map { item in
            ["version", "action", "author", "comment", "sha256", "time"].map { "\(item[$0] ?? "-")" }.joined(separator: " ")
        }.joined(separator: "\n")
    }

    @Test(arguments: [
        (["--from", "sqlite:/nonexistent/capstan.sqlite", "--to", "sqlite:/tmp/x.sqlite"], "--from: no SQLite store at /nonexistent/capstan.sqlite"),
        (["--from", "postgres://db", "--to", "sqlite:/tmp/x.sqlite"], "--from: store must be sqlite:PATH or etcd://"),
        (["--from", "sqlite:/tmp/a.sqlite", "--to", "sqlite:/tmp/b.sqlite", "--to-prefix", "/x"], "--to-prefix applies only to an etcd store"),
        (["--from", "etcd://127.0.0.1:2379", "--to", "etcd://127.0.0.1:2379"], "--from and --to name the same store and prefix"),
        (["--to", "sqlite:/tmp/b.sqlite"], "Missing expected argument '--from"),
    ])
    func badCopyArgumentsAreRefused(arguments: [String], message: String) async throws {
        let result = try await CapstanBinary.run(["store", "copy"] + arguments)
        #expect(result.status == 64, "\(arguments)")
        #expect(result.stderrLines.count == 1, "\(arguments): \(result.stderr)")
        #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
    }
}
