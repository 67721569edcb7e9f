import Foundation
import Hummingbird
import Prometheus
import Synchronization

/// The server's Prometheus metrics: request counts and latencies per route, store revision,
/// open watches. Kept in the server's own registry, so several servers (in tests) never mix.
public final class ServerMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let storeRevision: Gauge
    let compactRevision: Gauge
    let openWatches: Gauge
    let sseClients: Gauge
    let longPolls: Gauge

    static let latencyBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    public init() {
        storeRevision = registry.makeGauge(name: "capstan_store_revision", help: "Current revision of the store.")
        compactRevision = registry.makeGauge(
            name: "capstan_store_compact_revision", help: "Oldest revision the store still serves.")
        openWatches = registry.makeGauge(
            name: "capstan_store_watches", help: "Store watches currently following live events.")
        sseClients = registry.makeGauge(
            name: "capstan_http_watch_streams", help: "Open Server-Sent Events watch streams.")
        longPolls = registry.makeGauge(
            name: "capstan_http_long_polls", help: "Requests currently blocked in a long poll.")
    }

    func recordRequest(method: String, route: String, status: Int, duration: Duration) {
        let labels = [("method", method), ("route", route), ("status", String(status))]
        registry.makeCounter(
            name: "capstan_http_requests_total", labels: labels, help: "HTTP requests served."
        ).increment()
        registry.makeDurationHistogram(
            name: "capstan_http_request_duration_seconds", labels: [("method", method), ("route", route)],
            buckets: Self.latencyBuckets, help: "HTTP request latency until the response head."
        ).record(duration)
    }
}

/// Counts each request and times it, labelled by the matched route pattern (not the raw path,
/// which would explode the label set).
struct MetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let route = context.endpointPath ?? "unmatched"
        metrics.recordRequest(
            method: request.method.rawValue, route: route, status: Int(response.status.code),
            duration: ContinuousClock.now - start)
        return response
    }
}
