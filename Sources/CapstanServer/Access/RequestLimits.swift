import CapstanCore
import Hummingbird

/// The limits the server applies per client address and per token.
public struct AccessLimits: Sendable {
    /// Failed authentications per client address (guessing tokens or node secrets).
    public var authFailures = RateLimiter.Limit(rate: 1, burst: 10)
    /// Enrollments per client address.
    public var enrollments = RateLimiter.Limit(rate: 5, burst: 50)
    /// API requests per token.
    public var requests = RateLimiter.Limit(rate: 500, burst: 1000)

    public init() {}
}

/// The token buckets of `AccessLimits`: each check answers the 429 to send, or nil to go on.
struct RequestLimits: Sendable {
    private let authFailures: RateLimiter
    private let enrollments: RateLimiter
    private let requests: RateLimiter

    init(_ limits: AccessLimits) {
        authFailures = RateLimiter(limits.authFailures)
        enrollments = RateLimiter(limits.enrollments)
        requests = RateLimiter(limits.requests)
    }

    /// Counts a failed authentication from `address`. Failures are limited per address; a valid
    /// token passes whatever others behind the same address (a NAT, a proxy) got wrong.
    func afterAuthFailure(from address: String) -> Response? {
        authFailures.take(address).map { Self.tooManyRequests($0, "too many failed authentications from \(address)") }
    }

    func beforeEnrollment(from address: String) -> Response? {
        enrollments.take(address).map { Self.tooManyRequests($0, "too many enrollments from \(address)") }
    }

    func beforeRequest(of tokenID: String) -> Response? {
        requests.take(tokenID).map { Self.tooManyRequests($0, "token \(tokenID) is over its request rate") }
    }

    static func tooManyRequests(_ wait: Duration, _ detail: String) -> Response {
        let seconds = RateLimiter.retryAfterSeconds(wait)
        let problem = Problem(
            title: "Too Many Requests", status: 429, detail: "\(detail); retry after \(seconds) s", code: CapstanError.Code.rateLimited.rawValue)
        return ProblemMapping.response(for: problem, headers: [.retryAfter: String(seconds)])
    }
}
