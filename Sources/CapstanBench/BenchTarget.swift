import AsyncHTTPClient

/// One system under test, seen through its HTTP API.
///
/// Keys are relative paths such as `p/3-17.txt`; each target places them under its own `bench`
/// namespace or prefix. Everything else (connections, timing, load) is shared, so the two targets
/// differ only in how requests are spelled.
protocol BenchTarget: Sendable {
    /// "Capstan" or "etcd", for the report.
    var name: String { get }
    /// Scheme, host and port, e.g. `http://127.0.0.1:2379`.
    var baseURL: String { get }
    /// A request answered with 200 once the server serves.
    var healthRequest: HTTPClientRequest { get }
    /// Creates what keys live in before anything is written.
    func prepare(client: HTTPClient) async throws
    /// Writes the benchmark value to `key`, durably.
    func putRequest(key: String) -> HTTPClientRequest
    /// Reads `key`.
    func getRequest(key: String) -> HTTPClientRequest
    /// Opens a stream of the changes to keys under `prefix` made from now on.
    func watchRequest(prefix: String) -> HTTPClientRequest
    /// What one line of the watch stream says; keys come back relative, like `w/12.txt`.
    func parseWatchLine(_ line: Substring) throws -> WatchLine
    /// The `wrk` Lua script of a measurement: puts to fresh keys under `p/<tag>/`, or gets of
    /// random keys among the `keys` preloaded ones (`g/<i>.txt`), spelled as `putRequest` and
    /// `getRequest` spell them.
    func wrkScript(_ operation: ThroughputComparison.Operation, tag: String, keys: Int) -> String
}

/// One line of a watch stream.
enum WatchLine: Equatable {
    /// The watch is in place: changes from now on will be seen.
    case ready
    /// Changes to these keys.
    case changed([String])
    /// Anything else: headers of an event, comments, heartbeats.
    case other
}
