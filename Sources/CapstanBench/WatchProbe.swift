import AsyncHTTPClient
import NIOCore

/// Measures how long a write takes to reach a watcher on an otherwise idle server.
///
/// One watcher listens on a fresh prefix; one writer puts keys under it one after the other, with
/// a pause in between. Each put is timed from the moment it is sent and from the moment its
/// acknowledgement arrives to the moment the watcher receives its event.
struct WatchProbe: Sendable {
    struct Result: Sendable {
        /// From sending each put to receiving its event, in nanoseconds.
        var sendToEvent: [Int64]
        /// From each put's acknowledgement to its event; negative when the event came first.
        var ackToEvent: [Int64]
    }

    private struct Write: Sendable {
        var sent: ContinuousClock.Instant
        var acknowledged: ContinuousClock.Instant
    }

    private enum Part: Sendable {
        case received([Int: ContinuousClock.Instant])
        case written([Write])
    }

    let client: HTTPClient
    let target: any BenchTarget
    let events: Int
    let pause: Duration
    /// Distinguishes the keys of repeated probes.
    let round: Int

    private var prefix: String { "w/\(round)/" }
    private var timeLimit: Duration { .seconds(30) + (pause + .milliseconds(200)) * events }

    func run() async throws -> Result {
        let response = try await client.execute(
            target.watchRequest(prefix: prefix), timeout: .nanoseconds(timeLimit.nanoseconds))
        guard response.status.code == 200 else {
            let body = try await response.body.collect(upTo: 1 << 16)
            throw BenchError("\(target.name) refused the watch: HTTP \(response.status.code) \(String(buffer: body))")
        }
        let (ready, readyContinuation) = AsyncStream.makeStream(of: Void.self)
        return try await withThrowingTaskGroup(of: Part.self) { group in
            group.addTask { .received(try await receive(response.body, ready: readyContinuation)) }
            group.addTask {
                var signals = ready.makeAsyncIterator()
                guard await signals.next() != nil else {
                    throw BenchError("\(target.name) ended the watch before it was in place")
                }
                return .written(try await write())
            }
            group.addTask {
                try await Task.sleep(for: timeLimit)
                throw BenchError("\(target.name) did not deliver \(events) watch events within \(timeLimit)")
            }
            var arrivals: [Int: ContinuousClock.Instant]?
            var writes: [Write]?
            while arrivals == nil || writes == nil, let part = try await group.next() {
                switch part {
                case .received(let value): arrivals = value
                case .written(let value): writes = value
                }
            }
            group.cancelAll()
            var result = Result(sendToEvent: [], ackToEvent: [])
            for (index, write) in (writes ?? []).enumerated() {
                guard let arrival = arrivals?[index] else { continue }
                result.sendToEvent.append(write.sent.duration(to: arrival).nanoseconds)
                result.ackToEvent.append(write.acknowledged.duration(to: arrival).nanoseconds)
            }
            return result
        }
    }

    /// Reads the watch stream until every event arrived; signals `ready` once the watch is in place.
    private func receive(
        _ body: HTTPClientResponse.Body, ready: AsyncStream<Void>.Continuation
    ) async throws -> [Int: ContinuousClock.Instant] {
        defer { ready.finish() }
        var splitter = LineSplitter()
        var arrivals: [Int: ContinuousClock.Instant] = [:]
        for try await chunk in body {
            let now = ContinuousClock.now
            for line in splitter.append(chunk) {
                switch try target.parseWatchLine(line[...]) {
                case .ready:
                    ready.yield()
                    ready.finish()
                case .changed(let keys):
                    for index in keys.compactMap(index(ofKey:)) where arrivals[index] == nil {
                        arrivals[index] = now
                    }
                case .other:
                    break
                }
            }
            if arrivals.count >= events { return arrivals }
        }
        throw BenchError("\(target.name) closed the watch after \(arrivals.count) of \(events) events")
    }

    /// Puts the keys one after the other, pausing in between.
    private func write() async throws -> [Write] {
        let clock = ContinuousClock()
        var writes: [Write] = []
        for index in 0..<events {
            let request = target.putRequest(key: "\(prefix)\(index).txt")
            let sent = clock.now
            let response = try await client.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 1 << 20)
            let acknowledged = clock.now
            guard (200..<300).contains(response.status.code) else {
                throw BenchError("\(target.name) refused a put: HTTP \(response.status.code) \(String(buffer: body))")
            }
            writes.append(Write(sent: sent, acknowledged: acknowledged))
            try await Task.sleep(for: pause)
        }
        return writes
    }

    private func index(ofKey key: String) -> Int? {
        guard key.hasPrefix(prefix), key.hasSuffix(".txt") else { return nil }
        return Int(key.dropFirst(prefix.count).dropLast(".txt".count))
    }
}
