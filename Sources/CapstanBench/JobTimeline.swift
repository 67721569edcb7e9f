import AsyncHTTPClient
import CapstanClient
import CapstanCore
import Foundation
import NIOCore
import NIOFoundationCompat

/// One job as a client sees it: submitted with `POST /v1/jobs`, then followed on
/// `GET /v1/jobs/{id}/events` until `done`, every time taken from sending the POST.
struct JobTimeline: Sendable {
    var id: String
    /// Per node: until its `node` event in state `succeeded`.
    var succeeded: [Duration]
    /// Until the `done` event: the job finished, every result stored.
    var done: Duration

    /// Submits `spec` and follows the job to its end.
    /// - Throws: `BenchError` when the server refuses the job or the stream ends before `done`.
    static func run(_ spec: JobSpec, baseURL: String, client: HTTPClient, timeout: Duration) async throws -> JobTimeline {
        var request = HTTPClientRequest.capstan(baseURL + "/v1/jobs")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(data: try JSONEncoder().encode(spec)))
        let sent = ContinuousClock.now
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 28)
        // The answer lists every node; only the id is needed, the first "id" of the (sorted)
        // top-level keys.
        guard response.status.code == 201, let id = EventScan.string(after: #""id":""#, in: String(buffer: body)) else {
            throw BenchError("POST /v1/jobs failed: \(response.status) \(String(buffer: body).prefix(500))")
        }
        let stream = try await client.execute(
            HTTPClientRequest.capstan("\(baseURL)/v1/jobs/\(id)/events"), timeout: .nanoseconds(timeout.nanoseconds))
        guard stream.status.code == 200 else { throw BenchError("GET /v1/jobs/\(id)/events failed: \(stream.status)") }
        var parser = ServerSentEventParser()
        var succeeded: [String: ContinuousClock.Instant] = [:]
        for try await chunk in stream.body {
            let now = ContinuousClock.now
            for message in parser.feed(Array(chunk.readableBytesView)) {
                switch message.event {
                case "node":
                    if let name = EventScan.succeededNode(in: message.data), succeeded[name] == nil { succeeded[name] = now }
                case "done":
                    return JobTimeline(id: id, succeeded: succeeded.values.map { sent.duration(to: $0) }, done: sent.duration(to: now))
                default:
                    break
                }
            }
        }
        throw BenchError("the event stream of job \(id) ended before its done event")
    }
}

/// Reads what the benchmark needs of a job event's JSON without decoding it: the client shares
/// the cores with the server, and a job on 10,000 nodes sends some 30,000 events.
enum EventScan {
    /// The node named in a `node` event whose state is `succeeded`, else nil. Scans for the keys
    /// (they occur once in such an event, and never inside a string value); decodes in full when
    /// the name holds an escape.
    static func succeededNode(in data: String) -> String? {
        guard data.contains(#""state":"succeeded""#) else { return nil }
        if let name = string(after: #""name":""#, in: data) { return name }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard let event = try? decoder.decode(JobEvent.self, from: Data(data.utf8)), let node = event.node, node.state == .succeeded
        else { return nil }
        return node.name
    }

    /// The string value that follows the first `key` (which ends with the value's opening quote),
    /// or nil when there is none or it holds an escape.
    static func string(after key: String, in text: String) -> String? {
        guard let start = text.range(of: key)?.upperBound else { return nil }
        guard let end = text[start...].firstIndex(where: { $0 == "\"" || $0 == "\\" }), text[end] == "\"" else { return nil }
        return String(text[start..<end])
    }
}
