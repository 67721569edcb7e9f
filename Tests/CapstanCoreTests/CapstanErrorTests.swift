import Foundation
import Testing

@testable import CapstanCore

@Suite struct CapstanErrorTests {
    @Test func descriptionAddsThePositionWhenKnown() {
        #expect(CapstanError(.invalidKey, "bad key").description == "bad key")
        #expect(CapstanError(.invalidContent, "bad", line: 3).description == "bad (line 3)")
        #expect(CapstanError(.invalidContent, "bad", line: 3, column: 7).description == "bad (line 3, column 7)")
    }

    @Test func codesAreStableSnakeCase() {
        let codes: [CapstanError.Code: String] = [
            .invalidKey: "invalid_key", .invalidNamespace: "invalid_namespace", .invalidContent: "invalid_content",
            .invalidFormat: "invalid_format", .invalidArgument: "invalid_argument", .invalidEncoding: "invalid_encoding",
            .namespaceNotFound: "namespace_not_found", .namespaceExists: "namespace_exists",
            .namespaceNotEmpty: "namespace_not_empty", .configNotFound: "config_not_found",
            .revisionNotFound: "revision_not_found", .payloadTooLarge: "payload_too_large",
            .preconditionFailed: "precondition_failed", .compacted: "compacted", .futureRevision: "future_revision",
            .notFound: "not_found", .methodNotAllowed: "method_not_allowed", .conflict: "conflict",
            .unavailable: "unavailable", .internal: "internal",
        ]
        #expect(codes.count == 20)
        for (code, rawValue) in codes {
            #expect(code.rawValue == rawValue)
            #expect(code.description == rawValue)
        }
    }

    @Test func codeEncodesAsAPlainString() throws {
        let data = try JSONEncoder().encode([CapstanError.Code.namespaceNotFound])
        #expect(String(decoding: data, as: UTF8.self) == #"["namespace_not_found"]"#)
        let decoded = try JSONDecoder().decode([CapstanError.Code].self, from: data)
        #expect(decoded == [.namespaceNotFound])
    }
}
