import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird

/// The console's entry points: `/` and `/ui/` (the overview), login and logout, and its
/// stylesheet and script. The pages themselves are `ConsolePages`.
struct ConsoleRoutes {
    typealias Context = CapstanRequestContext

    let view: ConsoleView
    let access: AccessControl
    let sessions: ConsoleSessions
    let pages: ConsolePages
    /// Cookies carry `Secure` unless the server speaks plain HTTP.
    let secureCookies: Bool

    static let sessionCookie = "capstan_session"
    static let loginCookie = "capstan_login"
    /// The largest form a browser sends here.
    static let maxForm = 1 << 20

    func register(on router: GuardedRouter) {
        router.get("", access: .open) { _, _ in ConsoleView.redirect(to: "/ui/") }
        router.get("ui/static/{file}", access: .open) { _, context in try Self.asset(context.parameters.require("file")) }
        router.get("ui/login", access: .open) { request, _ in try await loginPage(request) }
        router.post("ui/login", access: .login) { request, _ in try await login(request) }
        router.post("ui/logout", access: .form) { request, _ in try await logout(request) }
        pages.register(on: router)
    }

    /// The login form, or with `?code=` (the URL `--dev` prints) a session at once.
    private func loginPage(_ request: Request) async throws -> Response {
        if let code = request.uri.queryParameters["code"].map(String.init) {
            guard let tokenID = sessions.redeem(code: code), let caller = try? await access.caller(tokenID: tokenID) else {
                return try loginForm(error: "This login link was used already or has expired: log in with a token (capstan token print).", status: .unauthorized)
            }
            let (cookie, record) = try await sessions.start(caller: caller)
            return ConsoleView.redirect(to: "/ui/", headers: sessionCookie(cookie, until: record.expiresAt))
        }
        return try loginForm(error: nil, status: .ok)
    }

    /// Exchanges the form's token for a session. The form carries a CSRF value that must match
    /// the cookie set with the form (a page elsewhere cannot read it), so no other site can log
    /// a browser in to a session of its choosing.
    private func login(_ request: Request) async throws -> Response {
        var request = request
        let fields = FormFields(try await AuditTrail.collectBody(&request, upTo: Self.maxForm))
        guard let expected = request.cookies[Self.loginCookie]?.value, let given = fields["csrf"],
            NodeRegistry.constantTimeEqual(expected, given)
        else {
            return try loginForm(error: "The form expired or came from elsewhere (CSRF check): try again.", status: .forbidden)
        }
        guard let token = fields["token"]?.trimmingCharacters(in: .whitespacesAndNewlines), !token.isEmpty else {
            return try loginForm(error: "Paste a token.", status: .badRequest)
        }
        do {
            let (cookie, record) = try await sessions.start(caller: try await access.authenticate(token))
            return ConsoleView.redirect(to: "/ui/", headers: sessionCookie(cookie, until: record.expiresAt))
        } catch let error as CapstanError where error.code == .unauthorized {
            return try loginForm(error: "That token does not work: \(error.message).", status: .unauthorized)
        }
    }

    private func logout(_ request: Request) async throws -> Response {
        if let cookie = request.cookies[Self.sessionCookie]?.value { try await sessions.end(cookie: cookie) }
        var headers: HTTPFields = [:]
        headers[values: .setCookie].append(expiredCookie(Self.sessionCookie, path: "/"))
        return ConsoleView.redirect(to: "/ui/login", headers: headers)
    }

    /// The login page with a fresh CSRF value in the form and in its cookie.
    private func loginForm(error: String?, status: HTTPResponse.Status) throws -> Response {
        let csrf = NodeRegistry.randomSecret()
        var headers: HTTPFields = [:]
        headers[values: .setCookie].append(
            try Cookie.validated(
                name: Self.loginCookie, value: csrf, maxAge: 3600, path: "/ui/login", secure: secureCookies, httpOnly: true, sameSite: .strict
            ).description)
        var values: [String: Any] = ["csrf": csrf]
        if let error { values["error"] = error }
        return view.page("login", values, status: status, headers: headers)
    }

    private func sessionCookie(_ value: String, until expiry: Date) -> HTTPFields {
        var headers: HTTPFields = [:]
        let maxAge = max(1, Int(expiry.timeIntervalSinceNow))
        if let cookie = try? Cookie.validated(
            name: Self.sessionCookie, value: value, maxAge: maxAge, path: "/", secure: secureCookies, httpOnly: true, sameSite: .strict)
        {
            headers[values: .setCookie].append(cookie.description)
        }
        headers[values: .setCookie].append(expiredCookie(Self.loginCookie, path: "/ui/login"))
        return headers
    }

    private func expiredCookie(_ name: String, path: String) -> String {
        "\(name)=; Max-Age=0; Path=\(path); HttpOnly; SameSite=Strict\(secureCookies ? "; Secure" : "")"
    }

    /// The stylesheet and the script, from the bundled resources.
    static func asset(_ name: String) throws -> Response {
        let types = ["console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"]
        guard let type = types[name], let url = BundledResource.url("console/\(name)"), let data = FileManager.default.contents(atPath: url.path)
        else { throw CapstanError(.notFound, "no console file \(name.quoted)") }
        var headers = ConsoleView.securityHeaders
        headers[.contentType] = type
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
