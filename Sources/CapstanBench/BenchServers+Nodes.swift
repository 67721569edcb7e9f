import AsyncHTTPClient
import Foundation
import NIOFoundationCompat

extension BenchServers {
    /// `count` simulated agents enrolled, connected and all healthy. What is measured next starts
    /// on a settled fleet: each node turns healthy on its second heartbeat, and those status writes
    /// are no part of it.
    func settledFleet(count: Int, round: Int) async throws -> SimulatedFleet {
        let fleet = SimulatedFleet(baseURL: capstan.baseURL, client: client, round: round)
        progress("\(count) agents: enrolling")
        try await fleet.enroll(count)
        progress("\(count) agents: connecting")
        try await fleet.connect()
        progress("\(count) agents: waiting for every node to turn healthy")
        try await waitUntilHealthy(selector: "fleet=\(fleet.label)", count: count)
        return fleet
    }

    /// Polls the Capstan server's node list until `count` nodes matching `selector` are healthy
    /// (a node turns healthy on its second heartbeat).
    /// - Throws: `BenchError` when they are not all healthy within `limit`.
    func waitUntilHealthy(selector: String, count: Int, within limit: Duration = .seconds(120)) async throws {
        struct List: Decodable {
            struct Node: Decodable { var status: String }
            var items: [Node]
        }
        let encoded = selector.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? selector
        let url = "\(capstan.baseURL)/v1/nodes?selector=\(encoded)"
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            let response = try await client.execute(HTTPClientRequest.capstan(url), timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 1 << 28)
            let nodes = (try? JSONDecoder().decode(List.self, from: Data(buffer: body)))?.items ?? []
            if nodes.count(where: { $0.status == "healthy" }) >= count { return }
            try await Task.sleep(for: .seconds(1))
        }
        throw BenchError("the \(count) agents (\(selector)) did not all turn healthy within \(limit)")
    }
}
