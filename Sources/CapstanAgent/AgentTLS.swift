import AsyncHTTPClient
import CapstanCore
import CapstanTLS
import Foundation
import NIOCore
import NIOSSL

/// The agent's side of TLS: finding the server's CA by the join token's pin, its client
/// certificate, and when to renew it.
enum AgentTLS {
    /// The certificate the agent verifies the server by: `--ca-cert`, else the one the server
    /// offers, accepted only if its fingerprint is the one the join token pins.
    static func trustAnchor(configuration: AgentConfiguration, http: HTTPClient) async throws -> String {
        if let path = configuration.caCertificateFile {
            guard let data = FileManager.default.contents(atPath: path) else { throw AgentError("--ca-cert: cannot read \(path)") }
            let pem = String(decoding: data, as: UTF8.self)
            do { _ = try CertificateFacts(pem: pem) } catch { throw AgentError("--ca-cert: \(path) holds no PEM certificate") }
            return pem
        }
        let token = try JoinToken(parsing: configuration.joinToken ?? "")
        guard let pin = token.fingerprint else {
            throw AgentError(
                "the server speaks TLS but the join token pins no CA fingerprint: use the token the server prints (cj1-...), or pass --ca-cert")
        }
        // Fetched without verification, then accepted only by its fingerprint: nothing is sent
        // before the pin matched.
        var request = HTTPClientRequest(url: configuration.server + "/v1/agent/ca")
        var unverified = TLSConfiguration.makeClientConfiguration()
        unverified.certificateVerification = .none
        request.tlsConfiguration = unverified
        let response = try await http.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else {
            throw AgentError("the server did not hand out its CA certificate (\(response.status.code)); is \(configuration.server) a Capstan server?")
        }
        let pem = String(buffer: body)
        let offered = try CertificateFacts(pem: pem).fingerprint
        guard offered == pin else {
            throw AgentError(
                "the server's CA has fingerprint \(offered) but the join token pins \(pin): refusing to enroll "
                    + "(a server other than the one that printed the token, or someone in between)")
        }
        return pem
    }

    /// TLS for the agent's connections: the server verified by `identity`'s CA, and the node's
    /// client certificate presented.
    ///
    /// A CA found by a `cj1-` token's pin is the installation's own, which issues serving
    /// certificates to its replicas only: any of them is the server, whatever name or address the
    /// agent reached it by, so host names are not compared. A CA given with `--ca-cert`, or
    /// pinned by a `cj1v-` token (the server serves a certificate of the operator's own), may
    /// certify other services, and then the name is checked as usual.
    static func configuration(_ identity: AgentIdentity) throws -> TLSConfiguration? {
        guard let ca = identity.caCertificate, let certificate = identity.certificate, let key = identity.key else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        if identity.verifiesServerName != true { configuration.certificateVerification = .noHostnameVerification }
        configuration.minimumTLSVersion = .tlsv12
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(ca.utf8)))
        configuration.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(certificate.utf8)).map { .certificate($0) }
        configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.utf8), format: .pem))
        return configuration
    }

    /// When the certificate is due for renewal (a third of its life left) and when it expires.
    static func schedule(_ identity: AgentIdentity) -> (renewAt: Date, expires: Date)? {
        guard let pem = identity.certificate, let facts = try? CertificateFacts(pem: pem) else { return nil }
        let life = facts.notAfter.timeIntervalSince(facts.notBefore)
        return (facts.notAfter.addingTimeInterval(-life / 3), facts.notAfter)
    }
}
