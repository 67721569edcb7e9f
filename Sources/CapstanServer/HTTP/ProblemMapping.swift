import CapstanCore
import CapstanStore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Turns any error into an RFC 9457 problem with a stable code: the one place where errors meet HTTP.
enum ProblemMapping {
    static func problem(for error: any Error) -> Problem {
        switch error {
        case let error as CapstanError:
            let status = status(for: error.code)
            return Problem(
                title: title(status), status: status, detail: error.message, code: error.code.rawValue,
                line: error.line, column: error.column)
        case let error as StoreError:
            switch error.code {
            case .compacted:
                return Problem(
                    title: title(410), status: 410, detail: error.message, code: CapstanError.Code.compacted.rawValue,
                    compactRevision: error.compactRevision)
            case .futureRevision:
                return Problem(title: title(400), status: 400, detail: error.message, code: CapstanError.Code.futureRevision.rawValue)
            case .invalidArgument:
                return Problem(title: title(400), status: 400, detail: error.message, code: CapstanError.Code.invalidArgument.rawValue)
            case .leaseNotFound:
                return Problem(title: title(404), status: 404, detail: error.message, code: CapstanError.Code.notFound.rawValue)
            default:
                return Problem(title: title(503), status: 503, detail: error.message, code: CapstanError.Code.unavailable.rawValue)
            }
        case let error as HTTPError:
            let status = Int(error.status.code)
            let code: CapstanError.Code =
                switch status {
                case 404: .notFound
                case 405: .methodNotAllowed
                case 413: .payloadTooLarge
                case 503: .unavailable
                case 400..<500: .invalidArgument
                default: .internal
                }
            let detail =
                status == 413 ? "request body is larger than the limit" : (error.body ?? error.status.reasonPhrase)
            return Problem(title: title(status), status: status, detail: detail, code: code.rawValue)
        case is NIOTooManyBytesError:
            // A route's own body limit, met by a body sent without a length (chunked).
            return Problem(
                title: title(413), status: 413, detail: "request body is larger than the limit",
                code: CapstanError.Code.payloadTooLarge.rawValue)
        case is DecodingError:
            return Problem(
                title: title(400), status: 400, detail: "request body is not the expected JSON: \(error)",
                code: CapstanError.Code.invalidArgument.rawValue)
        default:
            return Problem(
                title: title(500), status: 500, detail: "internal error", code: CapstanError.Code.internal.rawValue)
        }
    }

    static func status(for code: CapstanError.Code) -> Int {
        switch code {
        case .invalidKey, .invalidNamespace, .invalidContent, .invalidFormat, .invalidArgument, .invalidEncoding,
            .futureRevision, .invalidSelector:
            400
        case .unauthorized: 401
        case .forbidden: 403
        case .rateLimited: 429
        case .namespaceNotFound, .configNotFound, .revisionNotFound, .notFound, .nodeNotFound: 404
        case .methodNotAllowed: 405
        case .namespaceExists, .namespaceNotEmpty, .conflict: 409
        case .compacted: 410
        case .preconditionFailed: 412
        case .payloadTooLarge: 413
        case .unavailable: 503
        default: 500
        }
    }

    /// The standard reason phrase (`HTTPResponse.Status(code:)` leaves it empty).
    static func title(_ status: Int) -> String {
        switch status {
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 410: "Gone"
        case 411: "Length Required"
        case 412: "Precondition Failed"
        case 413: "Content Too Large"
        case 415: "Unsupported Media Type"
        case 422: "Unprocessable Content"
        case 428: "Precondition Required"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default: HTTPResponse.Status(code: status).reasonPhrase
        }
    }

    static func response(for problem: Problem, headers extra: HTTPFields = [:]) -> Response {
        let body = (try? HTTPHelpers.encoder.encode(problem)) ?? Data("{\"code\":\"internal\"}".utf8)
        var headers: HTTPFields = [.contentType: "application/problem+json"]
        headers.append(contentsOf: extra)
        return Response(
            status: HTTPResponse.Status(code: problem.status), headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(data: body)))
    }
}

/// Catches every error below it and answers it as `application/problem+json`.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            var problem = ProblemMapping.problem(for: error)
            if problem.status == 404, problem.code == CapstanError.Code.notFound.rawValue, error is HTTPError {
                problem.detail = "no route for \(request.method) \(request.uri.path)"
            }
            if problem.status >= 500 {
                context.logger.error(
                    "request failed", metadata: ["error": "\(String(reflecting: error))", "http.path": "\(request.uri.path)"])
            }
            return ProblemMapping.response(for: problem)
        }
    }
}
