import AsyncHTTPClient
import Foundation
import NIOCore

/// etcd's v3 HTTP/JSON gateway: base64 keys and values, watches as newline-delimited JSON.
struct EtcdTarget: BenchTarget {
    static let keyPrefix = "bench/"

    let baseURL: String
    let value: BenchValue

    var name: String { "etcd" }

    var healthRequest: HTTPClientRequest { HTTPClientRequest(url: baseURL + "/health") }

    func prepare(client: HTTPClient) async throws {}

    func putRequest(key: String) -> HTTPClientRequest {
        post("/v3/kv/put", json: #"{"key":"\#(Self.encoded(key))","value":"\#(value.base64)"}"#)
    }

    func getRequest(key: String) -> HTTPClientRequest {
        post("/v3/kv/range", json: #"{"key":"\#(Self.encoded(key))"}"#)
    }

    func watchRequest(prefix: String) -> HTTPClientRequest {
        post("/v3/watch", json: Self.watchBody(prefix: prefix))
    }

    /// The JSON body of a watch on `prefix` (`POST /v3/watch`).
    static func watchBody(prefix: String) -> String {
        let start = Array((keyPrefix + prefix).utf8)
        // The range end of a prefix is the prefix with its last byte incremented.
        var end = start
        end[end.count - 1] += 1
        return #"{"create_request":{"key":"\#(Data(start).base64EncodedString())","range_end":"\#(Data(end).base64EncodedString())"}}"#
    }

    private struct Message: Decodable {
        struct Result: Decodable {
            var created: Bool?
            var events: [Event]?
        }
        struct Event: Decodable {
            var kv: KeyValue?
        }
        struct KeyValue: Decodable {
            /// Base64 in the JSON; JSONDecoder decodes `Data` from base64.
            var key: Data
        }
        var result: Result?
        var error: ErrorBody?
    }

    private struct ErrorBody: Decodable {
        var message: String?
    }

    func parseWatchLine(_ line: Substring) throws -> WatchLine {
        guard !line.isEmpty else { return .other }
        let message = try JSONDecoder().decode(Message.self, from: Data(line.utf8))
        if let error = message.error {
            throw BenchError("etcd watch failed: \(error.message ?? String(line))")
        }
        guard let result = message.result else { return .other }
        if result.created == true { return .ready }
        let keys = (result.events ?? []).compactMap { event in
            event.kv.map { String(decoding: $0.key, as: UTF8.self) }
        }
        guard !keys.isEmpty else { return .other }
        return .changed(keys.map { $0.hasPrefix(Self.keyPrefix) ? String($0.dropFirst(Self.keyPrefix.count)) : $0 })
    }

    private static func encoded(_ key: String) -> String {
        Data((keyPrefix + key).utf8).base64EncodedString()
    }

    private func post(_ path: String, json: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: json))
        return request
    }
}

extension EtcdTarget {
    func wrkScript(_ operation: ThroughputComparison.Operation, tag: String, keys: Int) -> String {
        let headers = #"local headers = {["Content-Type"] = "application/json"}"#
        switch operation {
        case .put:
            return WrkScript.freshPuts(
                prefix: "p/\(tag)/",
                build: """
                    \(headers)
                    function build(key)
                      return wrk.format("POST", "/v3/kv/put", headers,
                        '{"key":"' .. b64(\(WrkScript.quoted(Self.keyPrefix)) .. key) .. '","value":"\(value.base64)"}')
                    end
                    """)
        case .get:
            return WrkScript.randomGets(
                keys: keys,
                build: """
                    \(headers)
                    function build(i)
                      return wrk.format("POST", "/v3/kv/range", headers,
                        '{"key":"' .. b64(\(WrkScript.quoted(Self.keyPrefix + "g/")) .. i .. ".txt") .. '"}')
                    end
                    """)
        }
    }
}
