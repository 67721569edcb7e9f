import AsyncHTTPClient
import CapstanCore
import Foundation

extension CapstanClient {
    /// Starts a job (or, for a known idempotency key, answers the job it started).
    public func runJob(_ spec: JobSpec) async throws -> JobInfo {
        let body = try Self.encoder.encode(spec)
        return try decode(JobInfo.self, try await send(.POST, "/v1/jobs", headers: [("Content-Type", "application/json")], body: body))
    }

    public func jobs() async throws -> JobList {
        try decode(JobList.self, try await send(.GET, "/v1/jobs"))
    }

    public func job(_ id: String) async throws -> JobInfo {
        try decode(JobInfo.self, try await send(.GET, "/v1/jobs/\(Self.percentEncode(id))"))
    }

    public func cancelJob(_ id: String) async throws -> JobInfo {
        try decode(JobInfo.self, try await send(.POST, "/v1/jobs/\(Self.percentEncode(id))/cancel"))
    }

    /// The job's events until it is done: every node's state first, then changes and output.
    /// A dropped stream is opened again (node states come again; output sent meanwhile is not).
    public func jobEvents(_ id: String) -> AsyncThrowingStream<JobEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                var failures = 0
                while !Task.isCancelled {
                    do {
                        let (response, _) = try await withFailover(idempotent: true) { server in
                            var request = HTTPClientRequest(url: url(server, "/v1/jobs/\(Self.percentEncode(id))/events"))
                            request.tlsConfiguration = tlsConfiguration
                            request.headers.add(name: "Accept", value: "text/event-stream")
                            if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
                            // Its own connection, as a config watch has (see there).
                            request.headers.add(name: "Connection", value: "close")
                            return (try await watchHTTP.execute(request, deadline: .distantFuture), server)
                        }
                        if response.status.code >= 400 {
                            throw Self.error(status: response.status, body: try await response.body.collect(upTo: 1 << 20))
                        }
                        var parser = ServerSentEventParser()
                        for try await chunk in response.body {
                            for message in parser.feed(Array(chunk.readableBytesView)) {
                                let event = try Self.decoder.decode(JobEvent.self, from: Data(message.data.utf8))
                                continuation.yield(event)
                                if event.type == .done {
                                    continuation.finish()
                                    return
                                }
                            }
                        }
                        throw ClientError("the job's event stream ended before the job did")
                    } catch let error as ClientError where error.problem != nil {
                        continuation.finish(throwing: error)
                        return
                    } catch {
                        failures += 1
                        guard failures <= 5, !Task.isCancelled else {
                            continuation.finish(throwing: error)
                            return
                        }
                        try? await Task.sleep(for: .milliseconds(200 * failures))
                    }
                }
                continuation.finish(throwing: CancellationError())
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

extension CapstanClient {
    public func putSchedule(_ name: String, _ spec: ScheduleSpec) async throws -> ScheduleInfo {
        let body = try Self.encoder.encode(spec)
        let answer = try await send(
            .PUT, "/v1/schedules/\(Self.percentEncode(name))", headers: [("Content-Type", "application/json")], body: body)
        return try decode(ScheduleInfo.self, answer)
    }

    public func schedules() async throws -> ScheduleList {
        try decode(ScheduleList.self, try await send(.GET, "/v1/schedules"))
    }

    public func schedule(_ name: String) async throws -> ScheduleInfo {
        try decode(ScheduleInfo.self, try await send(.GET, "/v1/schedules/\(Self.percentEncode(name))"))
    }

    public func removeSchedule(_ name: String) async throws {
        _ = try await send(.DELETE, "/v1/schedules/\(Self.percentEncode(name))")
    }
}
