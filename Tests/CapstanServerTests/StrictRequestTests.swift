import CapstanCore
import CapstanServer
import CapstanTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// Request bodies and parameters the API refuses rather than reads one way or another.
@Suite("Strict requests", .timeLimit(.minutes(2)))
struct StrictRequestTests {
    /// `{"role":"viewer","role":"admin"}` would be read as whichever the decoder keeps: refused,
    /// naming the key, and nothing is created.
    @Test func aJSONBodyThatRepeatsAKeyIsRefused() async throws {
        try await AccessTests.withRouter { fixture in
            let before = String(buffer: try await fixture.send(.get, "/v1/tokens").body)
            let token = try await fixture.send(.post, "/v1/tokens", body: #"{"role":"viewer","role":"admin"}"#)
            #expect(token.status == .badRequest)
            #expect(String(buffer: token.body).contains(#"duplicate key \"role\""#), "\(String(buffer: token.body))")
            #expect(String(buffer: try await fixture.send(.get, "/v1/tokens").body) == before)

            let namespace = try await fixture.send(.post, "/v1/namespaces", body: #"{"name":"prod","name":"dev"}"#)
            #expect(namespace.status == .badRequest)
            #expect(String(buffer: namespace.body).contains(#"duplicate key \"name\""#), "\(String(buffer: namespace.body))")
            #expect(try await fixture.send(.get, "/v1/namespaces/prod").status == .notFound)
            #expect(try await fixture.send(.get, "/v1/namespaces/dev").status == .notFound)
            // Nested objects too.
            let role = try await fixture.send(.put, "/v1/roles/r", body: #"{"rules":["config::read"],"description":"a","description":"b"}"#)
            #expect(role.status == .badRequest)
            #expect(String(buffer: role.body).contains(#"duplicate key \"description\""#))
            // The same bodies without the repetition go through.
            #expect(try await fixture.send(.post, "/v1/namespaces", body: #"{"name":"prod"}"#).status == .created)
        }
    }

    /// The audit listing's `limit` is 1 to 10000, as the API document says; outside is 400.
    @Test func theAuditLimitIsBoundedAsDocumented() async throws {
        try await AccessTests.withRouter { fixture in
            for limit in ["0", "10001", "99999999999"] {
                let answer = try await fixture.send(.get, "/v1/audit?limit=\(limit)")
                #expect(answer.status == .badRequest, "limit=\(limit)")
                #expect(String(buffer: answer.body).contains("between 1 and 10000"), "\(String(buffer: answer.body))")
            }
            for limit in ["1", "10000"] {
                #expect(try await fixture.send(.get, "/v1/audit?limit=\(limit)").status == .ok, "limit=\(limit)")
            }
        }
    }
}
