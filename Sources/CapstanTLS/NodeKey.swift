import Crypto
import Foundation
import X509

/// A node's private key and the signing requests made with it.
public struct NodeKey: Sendable {
    public let keyPEM: String
    let key: Certificate.PrivateKey

    public init() throws {
        key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        keyPEM = try key.serializeAsPEM().pemString
    }

    public init(pem: String) throws {
        key = try Certificate.PrivateKey(pemEncoded: pem)
        keyPEM = pem
    }

    /// A PKCS #10 request for a certificate naming `name`.
    public func signingRequest(name: String) throws -> String {
        let subject = try DistinguishedName { CommonName(name) }
        let request = try CertificateSigningRequest(
            version: .v1, subject: subject, privateKey: key, attributes: CertificateSigningRequest.Attributes(),
            signatureAlgorithm: .ecdsaWithSHA256)
        return try request.serializeAsPEM().pemString
    }
}

/// Facts read from a PEM certificate.
public struct CertificateFacts: Sendable {
    public var serial: String
    public var notBefore: Date
    public var notAfter: Date
    public var fingerprint: String

    public init(pem: String) throws {
        let certificate: Certificate
        do {
            certificate = try Certificate(pemEncoded: pem)
        } catch {
            throw TLSError("not a PEM-encoded certificate: \(error)")
        }
        self.init(certificate)
    }

    public init(der: [UInt8]) throws {
        self.init(try Certificate(derEncoded: der))
    }

    /// The PEM form of a DER certificate.
    public static func pem(der: [UInt8]) throws -> String {
        try Certificate(derEncoded: der).serializeAsPEM().pemString
    }

    init(_ certificate: Certificate) {
        serial = CertificateAuthority.serialHex(certificate.serialNumber)
        notBefore = certificate.notValidBefore
        notAfter = certificate.notValidAfter
        fingerprint = CertificateAuthority.fingerprint(of: certificate)
    }
}
