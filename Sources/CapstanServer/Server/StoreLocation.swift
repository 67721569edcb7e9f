import CapstanCore
import CapstanStore
import Foundation
import Logging

/// Where the server keeps its data: `sqlite:PATH` or `etcd://HOST:PORT[,HOST:PORT...]`.
public enum StoreLocation: Sendable, Hashable, CustomStringConvertible {
    /// One SQLite file on this machine.
    case sqlite(path: String)
    /// An etcd cluster, by its members' client URLs (`http://HOST:PORT`).
    case etcd(endpoints: [String])

    /// Parses a `--store` value.
    public init(parsing text: String) throws(CapstanError) {
        if text.hasPrefix("sqlite:") {
            let path = String(text.dropFirst("sqlite:".count))
            guard !path.isEmpty else {
                throw CapstanError(.invalidArgument, "sqlite store needs a file path, e.g. sqlite:/var/lib/capstan/capstan.sqlite")
            }
            self = .sqlite(path: path)
            return
        }
        if text.hasPrefix("etcd://") {
            let members = text.dropFirst("etcd://".count).split(separator: ",", omittingEmptySubsequences: false)
            var endpoints: [String] = []
            for member in members {
                endpoints.append("http://" + (try Self.member(String(member), in: text)))
            }
            self = .etcd(endpoints: endpoints)
            return
        }
        throw CapstanError(
            .invalidArgument,
            "store must be sqlite:PATH or etcd://HOST:PORT[,HOST:PORT...]; got \(text.isEmpty ? "nothing" : text)")
    }

    /// Checks one `HOST:PORT` of an etcd store URL.
    private static func member(_ member: String, in text: String) throws(CapstanError) -> String {
        guard let colon = member.lastIndex(of: ":"), colon != member.startIndex else {
            throw CapstanError(.invalidArgument, "etcd member must be HOST:PORT, e.g. 127.0.0.1:2379; got \(member.isEmpty ? "nothing" : member) in \(text)")
        }
        let host = member[..<colon]
        guard let port = Int(member[member.index(after: colon)...]), (1...65535).contains(port) else {
            throw CapstanError(.invalidArgument, "etcd member port must be 1-65535; got \(member) in \(text)")
        }
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: ".-[]:"))
        guard host.unicodeScalars.allSatisfy({ $0.isASCII && allowed.contains($0) }) else {
            throw CapstanError(.invalidArgument, "etcd member host \(host) is not a host name or address (in \(text))")
        }
        return "\(host):\(port)"
    }

    public var description: String {
        switch self {
        case .sqlite(let path): "sqlite:\(path)"
        case .etcd(let endpoints): "etcd://" + endpoints.map { $0.replacingOccurrences(of: "http://", with: "") }.joined(separator: ",")
        }
    }

    /// Checks an etcd key prefix (`--store-prefix`): empty, or starting with "/", printable
    /// ASCII without spaces. A trailing "/" is dropped (store keys begin with one).
    public static func normalizedPrefix(_ prefix: String) throws(CapstanError) -> String {
        guard !prefix.isEmpty else { return "" }
        guard prefix.hasPrefix("/") else {
            throw CapstanError(.invalidArgument, "store prefix must start with /, e.g. /team-a; got \(prefix)")
        }
        guard prefix.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw CapstanError(.invalidArgument, "store prefix must be printable ASCII without spaces; got \(prefix)")
        }
        var trimmed = Substring(prefix)
        while trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        return String(trimmed)
    }

    /// Opens the store. The caller runs its background work (`run()`) and closes it (`close`).
    ///
    /// - Parameter timeout: etcd only: how long a member may take to answer before calls and
    ///   the watch feed move to another.
    public func open(prefix: String, timeout: Duration = .seconds(10), logger: Logger) async throws -> any KeyValueStore {
        switch self {
        case .sqlite(let path):
            // A directory made here is the owner's only; one that exists is the operator's (it may
            // be shared), and the store's own files in it are made private by the store.
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            return try SQLiteStore(path: path, logger: logger)
        case .etcd(let endpoints):
            return try await EtcdStore(endpoints: endpoints, prefix: prefix, timeout: timeout, logger: logger)
        }
    }

    /// Closes a store this location opened.
    public static func close(_ store: any KeyValueStore) async {
        if let etcd = store as? EtcdStore { await etcd.shutdown() }
        if let sqlite = store as? SQLiteStore { sqlite.close() }
    }
}
