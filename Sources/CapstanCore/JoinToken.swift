/// A join token as an agent is given it: the server's enrollment secret and, when the server
/// speaks TLS, the SHA-256 fingerprint of the certificate the agent must find at the other end
/// (`cj1-FINGERPRINT-SECRET`). The agent checks it before it sends anything, so a token cannot
/// be replayed into a server that is not the one it was printed by, and no first use is trusted.
public struct JoinToken: Sendable, Hashable, CustomStringConvertible {
    public var secret: String
    /// `sha256:` and 64 hex digits; nil for a plain-HTTP server's token.
    public var fingerprint: String?

    public init(secret: String, fingerprint: String?) {
        self.secret = secret
        self.fingerprint = fingerprint
    }

    /// Reads a pinned token (`cj1-HEX-SECRET`) or a bare secret.
    public init(parsing text: String) throws(CapstanError) {
        guard text.hasPrefix("cj1-") else {
            self.init(secret: text, fingerprint: nil)
            return
        }
        let rest = text.dropFirst(4)
        let hex = rest.prefix(64)
        guard hex.count == 64, hex.allSatisfy(\.isHexDigit), rest.dropFirst(64).first == "-", rest.count > 65 else {
            throw CapstanError(.invalidArgument, "the join token starts like a pinned token (cj1-) but is not one: cj1-, 64 hex digits, -, the secret")
        }
        self.init(secret: String(rest.dropFirst(65)), fingerprint: "sha256:" + hex.lowercased())
    }

    public var description: String {
        guard let fingerprint else { return secret }
        return "cj1-\(fingerprint.dropFirst("sha256:".count))-\(secret)"
    }
}
