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
    func loadOrEnroll() async throws -> AgentIdentity {
        // The identity (the node's secret and key) and what templates last rendered are the
        // agent's own: the directory is made 0700 and those files 0600, once, and said. Other
        // files are left alone: --data-dir may name a directory that is not the agent's only.
        do {
            let tightened = try PrivateDirectory.prepare(configuration.dataDirectory, files: ["identity.json", "templates.json"])
            if !tightened.isEmpty {
                logger.warning(
                    "the agent's data directory was open to other users: made it the owner's only",
                    metadata: ["files": "\(tightened.joined(separator: ", "))"])
            }
        } catch {
            throw AgentError(error.message)
        }
        if let identity = try AgentIdentity.load(from: configuration.dataDirectory) {
            if let name = configuration.name, name != identity.name {
                throw AgentError(
                    "\(AgentIdentity.file(in: configuration.dataDirectory)) belongs to node \(identity.name), not \(name): "
                        + "use another --data-dir, or remove the file to enroll as \(name)")
            }
            // Enrolled while the server spoke plain HTTP: over TLS it needs a certificate first.
            if speaksTLS, identity.certificate == nil {
                guard configuration.joinToken != nil else {
                    throw AgentError(
                        "node \(identity.name) was enrolled without a certificate and the server now speaks TLS: "
                            + "remove it (capstan node rm \(identity.name)) and start the agent with the join token the server prints")
                }
                return try await enroll()
            }
            return identity
        }
        guard configuration.joinToken != nil else {
            throw AgentError(
                "no identity in \(configuration.dataDirectory) and no --join-token to enroll with (the server prints its token)")
        }
        return try await enroll()
    }

    /// Whether the server is reached over HTTPS (and so enrollment carries a certificate request).
    var speaksTLS: Bool { configuration.server.lowercased().hasPrefix("https://") }

    /// Enrolls with the join token, retrying while the server cannot be reached. Over HTTPS the
    /// server's CA is found first (by the token's pin) and a key made for the node's certificate.
    func enroll() async throws -> AgentIdentity {
        let name = configuration.name ?? HostFacts.collect().hostname.lowercased()
        let joinToken: JoinToken
        do { joinToken = try JoinToken(parsing: configuration.joinToken ?? "") } catch { throw AgentError(error.message) }
        if !speaksTLS, joinToken.fingerprint != nil {
            throw AgentError("the join token pins a CA fingerprint but --server is plain HTTP: use the https:// address the server printed")
        }
        var body = EnrollRequest(joinToken: joinToken.secret, name: name, labels: configuration.labels, facts: HostFacts.collect())
        let key = speaksTLS ? try NodeKey() : nil
        if let key { body.certificateRequest = try key.signingRequest(name: name) }
        // A CA given by hand may be a public or corporate one: then the name is checked too.
        let verifiesName = configuration.caCertificateFile != nil || joinToken.verifiesName
        var anchor: String?
        var attempt = 0
        while true {
            do {
                if speaksTLS, anchor == nil { anchor = try await AgentTLS.trustAnchor(configuration: configuration, http: http) }
                let answer = try await requestEnrollment(body, name: name, anchor: anchor, verifiesName: verifiesName)
                let identity = AgentIdentity(
                    name: answer.name, id: answer.id, secret: answer.secret, certificate: answer.certificate, key: key?.keyPEM,
                    caCertificate: anchor, verifiesServerName: speaksTLS ? verifiesName : nil)
                try identity.save(in: configuration.dataDirectory)
                logger.info("enrolled", metadata: ["node": "\(identity.name)", "node.id": "\(identity.id)"])
                events("enrolled")
                return identity
            } catch let error as AgentError {
                throw error
            } catch {
                // A certificate that does not check out is no outage: the token is not for this server.
                let text = String(describing: error)
                if text.contains("failedToValidateHostname") || text.contains("CERTIFICATE_VERIFY_FAILED") {
                    throw AgentError("\(configuration.server) is not the server the join token names: its certificate does not check out (\(text))")
                }
                attempt += 1
                logger.warning("cannot reach the server to enroll; retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: backoff(attempt: attempt))
            }
        }
    }

    /// One enrollment request; over HTTPS, the server is verified by `anchor` (its CA, PEM).
    /// Throws `AgentError` for a refusal, anything else for a server that could not be reached.
    private func requestEnrollment(_ body: EnrollRequest, name: String, anchor: String?, verifiesName: Bool) async throws -> EnrollResponse {
        var request = HTTPClientRequest(url: configuration.server + "/v1/agent/enroll")
        if let anchor {
            var verified = TLSConfiguration.makeClientConfiguration()
            if !verifiesName { verified.certificateVerification = .noHostnameVerification }
            verified.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(anchor.utf8)))
            request.tlsConfiguration = verified
        }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(data: try encoder.encode(body)))
        let response = try await http.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .created else {
            let detail = (try? JSONDecoder().decode(Problem.self, from: bytes))?.detail ?? String(buffer: bytes)
            throw AgentError("the server refused to enroll node \(name): \(detail)")
        }
        let answer = try JSONDecoder().decode(EnrollResponse.self, from: bytes)
        if speaksTLS, answer.certificate == nil {
            throw AgentError("the server answered the enrollment without a client certificate")
        }
        return answer
    }
}
