import AsyncHTTPClient
import NIOCore

/// Drives a server with concurrent clients, each sending one request at a time until time is up.
///
/// The same generator drives every target; only the requests it is handed differ.
struct LoadGenerator: Sendable {
    /// Builds the `sequence`-th request of client `client`; `random` is a fresh random number.
    typealias RequestBuilder = @Sendable (_ client: Int, _ sequence: Int, _ random: UInt64) -> HTTPClientRequest

    /// What one measurement saw.
    struct Result: Sendable {
        /// Requests answered with a 2xx status.
        var succeeded = 0
        var failed = 0
        var firstFailure: String?
        /// From the start until the last client finished its last request.
        var elapsed: Duration = .zero
        /// Latency of each successful request, in nanoseconds.
        var latencies: [Int64] = []
        /// CPU seconds the server used during the measurement, when known.
        var serverCPUSeconds: Double?
        /// CPU seconds this process (the load generator) used during the measurement, when known.
        var generatorCPUSeconds: Double?
        /// CPU seconds the etcd process used during the measurement, when known: for Capstan on
        /// etcd, the etcd work its requests caused.
        var etcdCPUSeconds: Double?
        /// Percentiles as the generator computed them, when it keeps no samples (wrk).
        var percentiles: LatencySummary?

        /// Percentiles of the successful requests' latencies.
        var latencySummary: LatencySummary { percentiles ?? LatencySummary(nanoseconds: latencies) }

        var throughput: Double { elapsed > .zero ? Double(succeeded) / elapsed.seconds : 0 }

        mutating func merge(_ other: Result) {
            succeeded += other.succeeded
            failed += other.failed
            firstFailure = firstFailure ?? other.firstFailure
            latencies += other.latencies
        }
    }

    /// A client gives up after this many failed requests: the server is gone or refusing.
    static let maxFailuresPerClient = 100

    let client: HTTPClient

    /// Runs `clients` concurrent request loops for `duration`.
    func run(clients: Int, duration: Duration, request: @escaping RequestBuilder) async -> Result {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + duration
        var total = Result()
        await withTaskGroup(of: Result.self) { group in
            for index in 0..<clients {
                group.addTask { await runClient(index, until: deadline, request: request) }
            }
            for await result in group {
                total.merge(result)
            }
        }
        total.elapsed = start.duration(to: clock.now)
        return total
    }

    private func runClient(_ index: Int, until deadline: ContinuousClock.Instant, request: RequestBuilder) async -> Result {
        let clock = ContinuousClock()
        var random = SplitMix(seed: UInt64(index) &* 0x2545_F491_4F6C_DD1D &+ 1)
        var result = Result()
        result.latencies.reserveCapacity(4096)
        var sequence = 0
        while clock.now < deadline, result.failed < Self.maxFailuresPerClient, !Task.isCancelled {
            let next = request(index, sequence, random.next())
            sequence += 1
            let sent = clock.now
            do {
                let response = try await client.execute(next, timeout: .seconds(60))
                let body = try await response.body.collect(upTo: 16 << 20)
                if (200..<300).contains(response.status.code) {
                    result.succeeded += 1
                    result.latencies.append(sent.duration(to: clock.now).nanoseconds)
                } else {
                    result.failed += 1
                    result.firstFailure = result.firstFailure ?? "HTTP \(response.status.code): \(String(buffer: body).prefix(300))"
                }
            } catch {
                result.failed += 1
                result.firstFailure = result.firstFailure ?? "\(error)"
            }
        }
        return result
    }
}
