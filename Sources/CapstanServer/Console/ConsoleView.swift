import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird
import Mustache

/// Renders console pages from the Mustache templates bundled with the server, and answers them
/// with the console's security headers.
///
/// Every value is HTML-escaped by the templates (`{{name}}`); the templates use no triple
/// mustache (a test checks), and the page runs no inline script: the Content-Security-Policy
/// allows scripts and styles from the server's own files only.
struct ConsoleView: Sendable {
    let library: MustacheLibrary

    /// The bundled templates; a server whose resources were not copied with it serves a page
    /// that says so instead of the console.
    static let bundled: ConsoleView? = {
        guard let directory = BundledResource.url("console") else { return nil }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return nil }
        var library = MustacheLibrary()
        for name in names where name.hasSuffix(".mustache") {
            guard let text = try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8) else { return nil }
            do {
                try library.register(text, named: String(name.dropLast(".mustache".count)))
            } catch {
                return nil
            }
        }
        return ConsoleView(library: library)
    }()

    /// Headers of every console answer.
    static let securityHeaders: HTTPFields = [
        .contentSecurityPolicy:
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        .xFrameOptions: "DENY",
        .xContentTypeOptions: "nosniff",
        .referrerPolicy: "no-referrer",
    ]

    /// The page `template` with `values`, answered with `status`.
    func page(_ template: String, _ values: [String: Any], status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) -> Response {
        let html = library.render(values, withTemplate: template) ?? "template \(template) is missing"
        var headers = Self.securityHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// A redirect after a form or to the login page (303: the browser follows with a GET).
    static func redirect(to location: String, headers extra: HTTPFields = [:]) -> Response {
        var headers = securityHeaders
        headers[.location] = location
        headers[.cacheControl] = "no-store"
        headers.append(contentsOf: extra)
        return Response(status: .seeOther, headers: headers)
    }
}

extension HTTPField.Name {
    static let contentSecurityPolicy = HTTPField.Name("Content-Security-Policy")!
    static let xFrameOptions = HTTPField.Name("X-Frame-Options")!
    static let xContentTypeOptions = HTTPField.Name("X-Content-Type-Options")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
}
