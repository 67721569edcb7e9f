/// A join token as an agent is given it: the server's enrollment secret and, when the server
/// speaks TLS, the SHA-256 fingerprint of the certificate the agent must find at the other end.
/// The agent checks it before it sends anything, so a token cannot be replayed into a server
/// that is not the one it was printed by, and no first use is trusted.
///
/// - `cj1-FINGERPRINT-SECRET`: the fingerprint is the installation's own CA, which certifies the
///   installation's replicas only: any certificate from it is the server, whatever name or
///   address the agent reaches it by.
/// - `cj1v-FINGERPRINT-SECRET`: the server serves a certificate of the operator's own
///   (`--tls-cert`), whose CA may certify other services too: the server's name is checked.
public struct JoinToken: Sendable, Hashable, CustomStringConvertible {
    public var secret: String
    /// `sha256:` and 64 hex digits; nil for a plain-HTTP server's token.
    public var fingerprint: String?
    /// Whether the agent must also check the server's name against its certificate.
    public var verifiesName: Bool

    public init(secret: String, fingerprint: String?, verifiesName: Bool = false) {
        self.secret = secret
        self.fingerprint = fingerprint
        self.verifiesName = verifiesName
    }

    /// Reads a pinned token (`cj1-HEX-SECRET`, `cj1v-HEX-SECRET`) or a bare secret.
    public init(parsing text: String) throws(CapstanError) {
        let verifiesName = text.hasPrefix("cj1v-")
        guard text.hasPrefix("cj1-") || verifiesName else {
            self.init(secret: text, fingerprint: nil)
            return
        }
        let rest = text.dropFirst(verifiesName ? 5 : 4)
        let hex = rest.prefix(64)
        guard hex.count == 64, hex.allSatisfy(\.isHexDigit), rest.dropFirst(64).first == "-", rest.count > 65 else {
            throw CapstanError(
                .invalidArgument, "the join token starts like a pinned token (cj1-) but is not one: cj1-, 64 hex digits, -, the secret")
        }
        self.init(secret: String(rest.dropFirst(65)), fingerprint: "sha256:" + hex.lowercased(), verifiesName: verifiesName)
    }

    public var description: String {
        guard let fingerprint else { return secret }
        return "\(verifiesName ? "cj1v" : "cj1")-\(fingerprint.dropFirst("sha256:".count))-\(secret)"
    }
}
