import Logging

/// The log handler of every Capstan process: `StreamLogHandler`'s lines on standard error, with
/// the logger's metadata turned into text only when a message is written.
///
/// `StreamLogHandler` formats its metadata each time it is set, and the HTTP server sets a
/// request id on every request's logger: a sorted, joined string built per request (a share of a
/// small put's server time) for messages that are almost never written at the default level.
public struct StandardErrorLogHandler: LogHandler {
    private var stream: StreamLogHandler
    public var metadata: Logger.Metadata = [:]

    public init(label: String) {
        stream = StreamLogHandler.standardError(label: label)
    }

    public var logLevel: Logger.Level {
        get { stream.logLevel }
        set { stream.logLevel = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { stream.metadataProvider }
        set { stream.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var writer = stream
        writer.metadata = metadata
        writer.log(event: event)
    }
}
