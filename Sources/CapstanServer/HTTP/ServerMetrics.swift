import Foundation
import HTTPTypes
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

    static var requests: MetricNameDescriptor { MetricNameDescriptor(
        metricName: "capstan_http_requests", unitName: "total", helpText: "HTTP requests served.") }
    static var requestDuration: MetricNameDescriptor { MetricNameDescriptor(
        metricName: "capstan_http_request_duration", unitName: "seconds",
        helpText: "HTTP request latency until the response head.") }

    public init() {
        storeRevision = registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "capstan_store_revision", unitName: "", helpText: "Current revision of the store."))
        compactRevision = registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "capstan_store_compact_revision", unitName: "", helpText: "Oldest revision the store still serves."))
        openWatches = registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "capstan_store_watches", unitName: "", helpText: "Store watches currently following live events."))
        sseClients = registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "capstan_http_watch_streams", unitName: "", helpText: "Open Server-Sent Events watch streams."))
        longPolls = registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "capstan_http_long_polls", unitName: "", helpText: "Requests currently blocked in a long poll."))
    }

    private struct RequestSeries: Hashable {
        var method: String
        var route: String
        var status: Int
    }

    private struct RouteSeries: Hashable {
        var method: String
        var route: String
    }

    /// Metric handles by label set: looked up in the registry once, then reused.
    private let counters = Mutex<[RequestSeries: Counter]>([:])
    private let histograms = Mutex<[RouteSeries: DurationHistogram]>([:])

    func recordRequest(method: String, route: String, status: Int, duration: Duration) {
        let series = RequestSeries(method: method, route: route, status: status)
        let counter = counters.withLock { counters in
            if let counter = counters[series] { return counter }
            let counter = registry.makeCounter(
                descriptor: Self.requests, labels: [("method", method), ("route", route), ("status", String(status))])
            counters[series] = counter
            return counter
        }
        counter.increment()
        let routeSeries = RouteSeries(method: method, route: route)
        let histogram = histograms.withLock { histograms in
            if let histogram = histograms[routeSeries] { return histogram }
            let histogram = registry.makeDurationHistogram(
                descriptor: Self.requestDuration, labels: [("method", method), ("route", route)], buckets: Self.latencyBuckets)
            histograms[routeSeries] = histogram
            return histogram
        }
        histogram.record(duration)
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
