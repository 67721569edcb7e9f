import AsyncHTTPClient
import CapstanCore
import Foundation
import NIOCore
import NIOFoundationCompat

extension BenchServers {
    /// Writes a config on the Capstan server through the API; answers its revision.
    func putConfig(_ key: String, _ content: String) async throws -> Int64 {
        var request = HTTPClientRequest.capstan("\(capstan.baseURL)/v1/config/\(key)")
        request.method = .PUT
        request.body = .bytes(ByteBuffer(string: content))
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status.code == 200 || response.status.code == 201,
            let info = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
            let revision = (info["revision"] as? NSNumber)?.int64Value
        else { throw BenchError("PUT \(key) failed: \(response.status) \(String(buffer: body))") }
        return revision
    }

    /// Stores a template binding `selector` that renders `source` with `data` (into a path no
    /// simulated agent writes).
    func putTemplate(_ name: String, selector: String, source: String, data: String) async throws {
        let spec = TemplateSpec(selector: selector, source: source, dest: "/nonexistent/bench/\(name).conf", data: [data])
        var request = HTTPClientRequest.capstan("\(capstan.baseURL)/v1/templates/\(name)")
        request.method = .PUT
        request.body = .bytes(ByteBuffer(data: try JSONEncoder().encode(spec)))
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status.code == 200 else { throw BenchError("PUT template failed: \(response.status) \(String(buffer: body))") }
    }
}
