import CapstanCore
import HTTPTypes
import Hummingbird

/// Who calls: the caller a request's bearer token stands for.
struct Authentication: Sendable {
    let access: AccessControl
    let sessions: ConsoleSessions

    /// The console session of a request's cookie; nil without one, or when it expired or its
    /// token stopped working (revoked, expired, its role removed).
    func session(of request: Request) async throws -> ConsoleSessions.Session? {
        guard let cookie = request.cookies[ConsoleRoutes.sessionCookie]?.value, let record = try await sessions.record(cookie: cookie),
            let caller = try? await access.caller(tokenID: record.tokenID)
        else { return nil }
        return ConsoleSessions.Session(record: record, caller: caller)
    }

    /// The request's caller; `unauthorized` without a token, or with one that does not work.
    func caller(of request: Request) async throws -> Caller {
        guard let token = Self.bearer(request.headers) else {
            throw CapstanError(.unauthorized, "this request needs a token: pass --token, set CAPSTAN_TOKEN or run capstan login")
        }
        return try await access.authenticate(token)
    }

    /// The bearer token of an `Authorization` header.
    static func bearer(_ headers: HTTPFields) -> String? {
        guard let value = headers[.authorization] else { return nil }
        let utf8 = value.utf8
        // "Bearer " in any case, then the token with surrounding blanks dropped.
        guard utf8.count > 7, utf8.prefix(6).elementsEqual("bearer".utf8, by: { $0 | 0x20 == $1 }),
            utf8[utf8.index(utf8.startIndex, offsetBy: 6)] == UInt8(ascii: " ")
        else { return nil }
        let token = value.utf8.dropFirst(7).drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        let end = token.lastIndex { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }
        guard let end else { return nil }
        return String(Substring(token[...end]))
    }
}
