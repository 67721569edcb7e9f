import CapstanCore
import CapstanTLS
import Foundation
import NIOCore
import NIOSSL

/// How the server speaks TLS; nil in `ServerConfiguration.tls` is plain HTTP (`--dev`, `--plain-http`).
public enum TLSSettings: Sendable, Hashable {
    /// A certificate from the installation's own CA, for these names besides `localhost`, the
    /// loopback addresses, the host's name and the listen address.
    case authority(names: [String])
    /// A given certificate chain and key (PEM files). The last certificate of the chain is the one
    /// clients and agents must trust (and the one a join token pins).
    case given(certificateFile: String, keyFile: String)
}

/// TLS as a replica serves it: the installation's CA (which signs node certificates and verifies
/// them on agent connections) and the certificate clients verify the server by.
public struct ServingTLS: Sendable {
    public let authority: CertificateAuthority
    /// The certificate clients must trust to verify this server, PEM, and its fingerprint.
    public let anchorPEM: String
    public let anchorFingerprint: String
    /// Whether the server serves a certificate of the operator's own (`--tls-cert`): its CA may
    /// certify other services, so agents check the server's name.
    public let givenCertificate: Bool
    let configuration: TLSConfiguration

    /// Server certificates the CA issues last this long; each start issues a new one.
    static let serverCertificateLifetime: TimeInterval = 365 * 86_400

    /// - Parameter authority: the installation's CA (`InstallationSecrets.authority()`).
    public static func prepare(_ settings: TLSSettings, authority: CertificateAuthority, host: String) throws -> ServingTLS {
        let chainPEM: String
        let keyPEM: String
        switch settings {
        case .authority(let names):
            var all = names + ["localhost", "127.0.0.1", "::1"]
            if let hostName = ProcessInfo.processInfo.hostName as String?, !hostName.isEmpty { all.append(hostName) }
            if !["0.0.0.0", "::", ""].contains(host) { all.append(host) }
            var seen = Set<String>()
            all = all.filter { seen.insert($0).inserted }
            (chainPEM, keyPEM) = try authority.issueServerCertificate(names: all, validFor: serverCertificateLifetime)
        case .given(let certificateFile, let keyFile):
            chainPEM = try read(certificateFile, "--tls-cert")
            keyPEM = try read(keyFile, "--tls-key")
        }
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(Array(chainPEM.utf8))
            key = try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem)
        } catch {
            throw CapstanError(.invalidArgument, "the TLS certificate or key cannot be read as PEM: \(error)")
        }
        guard let last = chain.last else { throw CapstanError(.invalidArgument, "--tls-cert holds no certificate") }
        let anchorPEM: String
        switch settings {
        case .authority: anchorPEM = authority.certificatePEM
        case .given: anchorPEM = try pem(of: last)
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        // API clients bring tokens, agents bring certificates: a certificate is asked for, checked
        // against the CA when presented, and required on the agent routes.
        configuration.certificateVerification = .optionalVerification
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(authority.certificatePEM.utf8)))
        return ServingTLS(
            authority: authority, anchorPEM: anchorPEM, anchorFingerprint: try CertificateFacts(pem: anchorPEM).fingerprint,
            givenCertificate: { if case .given = settings { return true } else { return false } }(), configuration: configuration)
    }

    private static func read(_ path: String, _ flag: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CapstanError(.invalidArgument, "\(flag): cannot read \(path)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    private static func pem(of certificate: NIOSSLCertificate) throws -> String {
        try CertificateFacts.pem(der: certificate.toDERBytes())
    }
}

extension Channel {
    /// The serial (hex) of the client certificate the peer presented and the CA verified; nil on a
    /// plain connection or when none was presented.
    func verifiedClientCertificateSerial() async -> String? {
        guard let certificate = try? await nioSSL_peerCertificate().get(), let der = try? certificate.toDERBytes() else { return nil }
        return try? CertificateFacts(der: der).serial
    }
}
