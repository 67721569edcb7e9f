import AsyncHTTPClient
import CapstanCore
import CapstanTLS
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOFoundationCompat
import NIOSSL
import HummingbirdWSClient
import Synchronization

extension Agent {
    /// Renews the node's certificate whenever a third of its life is left, until cancelled.
    func renewCertificates(_ current: CurrentIdentity) async {
        var attempt = 0
        while !Task.isCancelled {
            // No certificate (plain HTTP): looked at again later, in case the agent enrolls anew.
            guard let (renewAt, _) = AgentTLS.schedule(current.identity) else {
                do { try await Task.sleep(for: .seconds(60)) } catch { return }
                continue
            }
            let wait = renewAt.timeIntervalSinceNow
            if wait > 0 {
                // Checked at least hourly, so that a clock that jumped is noticed.
                do { try await Task.sleep(for: .seconds(min(wait, 3600))) } catch { return }
                continue
            }
            do {
                current.identity = try await renew(current.identity)
                attempt = 0
            } catch {
                attempt += 1
                logger.warning("the certificate was not renewed; trying again", metadata: ["error": "\(error)"])
                do { try await Task.sleep(for: backoff(attempt: attempt)) } catch { return }
            }
        }
    }

    /// Asks for a certificate for a new key, over the mutual-TLS connection the current one opens.
    func renew(_ identity: AgentIdentity) async throws -> AgentIdentity {
        let key = try NodeKey()
        var request = HTTPClientRequest(url: configuration.server + "/v1/agent/renew")
        request.method = .POST
        request.tlsConfiguration = try AgentTLS.configuration(identity)
        request.headers.add(name: "X-Capstan-Node", value: identity.name)
        request.headers.add(name: "Authorization", value: "Bearer \(identity.secret)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(data: try JSONEncoder().encode(CertificateRenewal(certificateRequest: try key.signingRequest(name: identity.name)))))
        let response = try await http.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else {
            let detail = (try? JSONDecoder().decode(Problem.self, from: bytes))?.detail ?? String(buffer: bytes)
            throw AgentError("the server refused to renew the certificate: \(detail)")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let renewed = try decoder.decode(RenewedCertificate.self, from: bytes)
        var next = identity
        next.certificate = renewed.certificate
        next.key = key.keyPEM
        try next.save(in: configuration.dataDirectory)
        logger.info("certificate renewed", metadata: ["node": "\(identity.name)", "expires": "\(renewed.expires)"])
        events("certificate renewed")
        return next
    }
}
