import Logging
import Testing

@testable import CapstanServer

@Suite("Standard error log handler")
struct StandardErrorLogHandlerTests {
    @Test func metadataSetOnTheLoggerIsKeptAndRead() {
        var logger = Logger(label: "test") { StandardErrorLogHandler(label: $0) }
        logger[metadataKey: "request.id"] = "42"
        logger.logLevel = .debug
        #expect(logger[metadataKey: "request.id"] == "42")
        #expect(logger.logLevel == .debug)
        logger[metadataKey: "request.id"] = nil
        #expect(logger[metadataKey: "request.id"] == nil)
        #expect(logger.handler.metadata.isEmpty)
    }
}
