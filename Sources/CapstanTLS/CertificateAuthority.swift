import Crypto
import Foundation
import SwiftASN1
import X509

/// The server's own certificate authority: it signs the servers' certificates and the nodes'
/// client certificates. Its fingerprint (SHA-256 of its DER form) is what join tokens pin.
public struct CertificateAuthority: Sendable {
    public let certificate: Certificate
    let key: Certificate.PrivateKey

    /// The PEM forms, as stored and as handed to agents and the CLI.
    public let certificatePEM: String
    public let keyPEM: String

    public init(certificatePEM: String, keyPEM: String) throws {
        do {
            certificate = try Certificate(pemEncoded: certificatePEM)
            key = try Certificate.PrivateKey(pemEncoded: keyPEM)
        } catch {
            throw TLSError("the stored certificate authority cannot be read: \(error)")
        }
        self.certificatePEM = certificatePEM
        self.keyPEM = keyPEM
    }

    /// A new authority with a P-256 key, valid for `years`.
    public static func create(years: Int = 10, now: Date = Date()) throws -> CertificateAuthority {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let name = try DistinguishedName {
            OrganizationName("Capstan")
            CommonName("Capstan CA \(randomHex(4))")
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(Double(years) * 365 * 86_400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: key.publicKey)
            },
            issuerPrivateKey: key)
        return try CertificateAuthority(
            certificatePEM: try certificate.serializeAsPEM().pemString, keyPEM: try key.serializeAsPEM().pemString)
    }

    /// `sha256:` and the hex SHA-256 of the authority's DER form.
    public var fingerprint: String { Self.fingerprint(of: certificate) }

    public static func fingerprint(of certificate: Certificate) -> String {
        var serializer = DER.Serializer()
        try? serializer.serialize(certificate)
        return "sha256:" + hex(SHA256.hash(data: serializer.serializedBytes))
    }

    /// A server certificate for `names` (DNS names or IP addresses), with a new key.
    public func issueServerCertificate(names: [String], validFor: TimeInterval, now: Date = Date()) throws -> (certificatePEM: String, keyPEM: String) {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let subject = try DistinguishedName {
            OrganizationName("Capstan")
            CommonName(names.first ?? "capstan")
        }
        let alternatives = SubjectAlternativeNames(names.map(Self.generalName))
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(validFor),
            issuer: self.certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                alternatives
            },
            issuerPrivateKey: self.key)
        return (try certificate.serializeAsPEM().pemString, try key.serializeAsPEM().pemString)
    }

    /// A client certificate for node `name`, for the key of `csrPEM` (whose signature proves the
    /// node holds that key). The subject is the node's name whatever the request asked for.
    public func issueNodeCertificate(csrPEM: String, name: String, validFor: TimeInterval, now: Date = Date()) throws -> IssuedCertificate {
        let request: CertificateSigningRequest
        do {
            request = try CertificateSigningRequest(pemEncoded: csrPEM)
        } catch {
            throw TLSError("the certificate signing request is not a PEM-encoded PKCS #10 request: \(error)")
        }
        guard request.publicKey.isValidSignature(request.signature, for: request) else {
            throw TLSError("the certificate signing request's signature does not match its key")
        }
        let subject = try DistinguishedName {
            OrganizationName("Capstan nodes")
            CommonName(name)
        }
        let serial = Certificate.SerialNumber()
        let notAfter = now.addingTimeInterval(validFor)
        let certificate = try Certificate(
            version: .v3, serialNumber: serial, publicKey: request.publicKey,
            notValidBefore: now.addingTimeInterval(-min(300, validFor / 10)), notValidAfter: notAfter,
            issuer: self.certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.clientAuth])
            },
            issuerPrivateKey: key)
        return IssuedCertificate(
            certificatePEM: try certificate.serializeAsPEM().pemString, serial: Self.serialHex(serial), notAfter: notAfter)
    }

    public static func serialHex(_ serial: Certificate.SerialNumber) -> String {
        hex(serial.bytes)
    }

    static func generalName(_ name: String) -> GeneralName {
        if let address = IPAddress(name) { return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(address.bytes))) }
        return .dnsName(name)
    }

    static func randomHex(_ count: Int) -> String {
        hex((0..<count).map { _ in UInt8.random(in: 0...255) })
    }

    static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 15)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// A node certificate as issued: PEM, serial (hex) and expiry.
public struct IssuedCertificate: Sendable, Hashable {
    public var certificatePEM: String
    public var serial: String
    public var notAfter: Date
}

/// An IPv4 or IPv6 address in its binary form.
struct IPAddress {
    var bytes: [UInt8]

    init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            bytes = withUnsafeBytes(of: &v6) { Array($0) }
            return
        }
        return nil
    }
}

public struct TLSError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
