import Logging
import Synchronization

/// Whether the edge has logged why a connection ended (a malformed request, a failed TLS
/// handshake, plain HTTP on the TLS port), shared by the connection's handlers and its task.
///
/// A connection that ends before its first request is routed also fails the framework's wait for
/// a WebSocket upgrade, which logs an error of its own; `logger(_:)` drops that second line.
final class ConnectionEnd: Sendable {
    private let reported = Atomic(false)

    /// Marks the end reported; true for the first caller only, who logs it.
    func markReported() -> Bool {
        reported.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
    }

    var isReported: Bool { reported.load(ordering: .relaxed) }

    /// `logger`, silent once the end is reported.
    func logger(_ logger: Logger) -> Logger {
        var quiet = logger
        quiet.handler = QuietAfterReport(base: logger.handler, end: self)
        return quiet
    }

    private struct QuietAfterReport: LogHandler {
        var base: any LogHandler
        let end: ConnectionEnd

        func log(event: LogEvent) {
            guard !end.isReported else { return }
            base.log(event: event)
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { base[metadataKey: key] }
            set { base[metadataKey: key] = newValue }
        }

        var metadata: Logger.Metadata {
            get { base.metadata }
            set { base.metadata = newValue }
        }

        var logLevel: Logger.Level {
            get { base.logLevel }
            set { base.logLevel = newValue }
        }

        var metadataProvider: Logger.MetadataProvider? {
            get { base.metadataProvider }
            set { base.metadataProvider = newValue }
        }
    }
}
