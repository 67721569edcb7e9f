import AsyncHTTPClient
import Foundation
import NIOCore

/// Capstan's HTTP API: raw content under `/v1/config/bench/`, watches as Server-Sent Events.
struct CapstanTarget: BenchTarget {
    static let namespace = "bench"

    let baseURL: String
    let value: BenchValue

    var name: String { "Capstan" }

    var healthRequest: HTTPClientRequest { HTTPClientRequest.capstan(baseURL + "/healthz") }

    func prepare(client: HTTPClient) async throws {
        var request = HTTPClientRequest.capstan(baseURL + "/v1/namespaces")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: #"{"name":"\#(Self.namespace)"}"#))
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 16)
        guard response.status.code == 201 || response.status.code == 409 else {
            throw BenchError("Capstan refused to create namespace \(Self.namespace): \(response.status) \(String(buffer: body))")
        }
    }

    func putRequest(key: String) -> HTTPClientRequest {
        var request = HTTPClientRequest.capstan("\(baseURL)/v1/config/\(Self.namespace)/\(key)")
        request.method = .PUT
        request.headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        request.body = .bytes(value.bytes)
        return request
    }

    func getRequest(key: String) -> HTTPClientRequest {
        HTTPClientRequest.capstan("\(baseURL)/v1/config/\(Self.namespace)/\(key)")
    }

    func watchRequest(prefix: String) -> HTTPClientRequest {
        var request = HTTPClientRequest.capstan("\(baseURL)/v1/watch?prefix=\(Self.namespace)/\(prefix)")
        request.headers.add(name: "Accept", value: "text/event-stream")
        return request
    }

    private struct Event: Decodable {
        var key: String
    }

    func parseWatchLine(_ line: Substring) throws -> WatchLine {
        if line.hasPrefix(": watching") { return .ready }
        guard line.hasPrefix("data:") else { return .other }
        let event = try JSONDecoder().decode(Event.self, from: Data(line.dropFirst("data:".count).utf8))
        let namespacePrefix = Self.namespace + "/"
        let key = event.key.hasPrefix(namespacePrefix) ? String(event.key.dropFirst(namespacePrefix.count)) : event.key
        return .changed([key])
    }
}

extension CapstanTarget {
    func wrkScript(_ operation: ThroughputComparison.Operation, tag: String, keys: Int) -> String {
        let path = "/v1/config/\(Self.namespace)/"
        let authorization = WrkScript.quoted("Bearer \(ServeCommand.benchRootToken)")
        switch operation {
        case .put:
            return WrkScript.freshPuts(
                prefix: "p/\(tag)/",
                build: """
                    local headers = {["Authorization"] = \(authorization), ["Content-Type"] = "text/plain; charset=utf-8"}
                    local value = \(WrkScript.quoted(String(buffer: value.bytes)))
                    function build(key)
                      return wrk.format("PUT", \(WrkScript.quoted(path)) .. key, headers, value)
                    end
                    """)
        case .get:
            return WrkScript.randomGets(
                keys: keys,
                build: """
                    local headers = {["Authorization"] = \(authorization)}
                    function build(i)
                      return wrk.format("GET", \(WrkScript.quoted(path + "g/")) .. i .. ".txt", headers)
                    end
                    """)
        }
    }
}
