import CapstanCore

/// Where domain state lives in the store: every key under one reserved root.
enum StoreLayout {
    static let root = "/capstan/"
    static let namespaces = root + "ns/"
    static let configs = root + "config/"
    static let history = root + "history/"
    static let locks = root + "locks/"
    static let nodes = root + "nodes/"
    /// A node's key here exists while its agent is connected to a replica (under its lease).
    static let presences = root + "presence/"

    /// The join token, sealed under the secret key (`InstallationSecrets`).
    static let joinToken = root + "join-token"
    /// Secrets' data keys, each wrapped under the server's secret key: `secret-keys/ID`.
    static let secretKeys = root + "secret-keys/"
    static func secretKey(_ id: String) -> String { secretKeys + id }
    /// The installation's certificate authority: certificate (PEM), and its key sealed under the secret key.
    static let tlsAuthority = root + "tls/authority"

    /// API tokens and roles, under one prefix so that one watch keeps their cache.
    static let access = root + "access/"
    static let tokens = access + "tokens/"
    static let roles = access + "roles/"
    /// Written with the root token on the first start: bootstrap runs once per installation.
    static let accessBootstrapped = access + "bootstrapped"

    static func token(_ id: String) -> String { tokens + id }
    /// Console sessions, by the SHA-256 of their cookie.
    static let sessions = access + "sessions/"
    static func session(_ hash: String) -> String { sessions + hash }
    /// One-time console login codes (`--dev`), by the SHA-256 of the code.
    static let loginCodes = access + "login-codes/"
    static func loginCode(_ hash: String) -> String { loginCodes + hash }

    static func role(_ name: String) -> String { roles + name }

    /// The audit log: entries at `audit/SEQUENCE` (zero-padded), the chain's head at `audit-head`.
    static let audit = root + "audit/"
    static let auditHead = root + "audit-head"
    static let templates = root + "templates/"
    static let templateStatuses = root + "template-status/"

    static let jobs = root + "jobs/"
    /// Each node's result of a job, at `job-nodes/JOB/NODE`.
    static let jobNodes = root + "job-nodes/"
    /// The job each idempotency key created.
    static let jobKeys = root + "job-keys/"

    /// A key per replica that runs jobs, under its lease: a job whose replica's key is gone
    /// was cut off by a stop.
    static let jobRunners = root + "job-runners/"

    static func jobRunner(_ replica: String) -> String { jobRunners + replica }

    static func job(_ id: String) -> String { jobs + id }

    static let checks = root + "checks/"
    /// Each node's last status of a check, at `check-status/CHECK/NODE`.
    static let checkStatuses = root + "check-status/"

    static func check(_ name: String) -> String { checks + name }

    static func checkStatusPrefix(_ check: String) -> String { checkStatuses + check + "/" }

    static func checkStatus(_ check: String, node: String) -> String { checkStatusPrefix(check) + node }

    static let schedules = root + "schedules/"

    static func schedule(_ name: String) -> String { schedules + name }

    static func jobNodesPrefix(_ id: String) -> String { jobNodes + id + "/" }

    static func jobNode(_ id: String, node: String) -> String { jobNodesPrefix(id) + node }

    static func jobKey(_ key: String) -> String { jobKeys + key }

    static func template(_ name: String) -> String { templates + name }

    static func templateStatusPrefix(_ template: String) -> String { templateStatuses + template + "/" }

    static func templateStatus(_ template: String, node: String) -> String { templateStatusPrefix(template) + node }

    static func node(_ name: String) -> String { nodes + name }

    static func presence(_ name: String) -> String { presences + name }

    /// The key of a lease lock for run-once work.
    static func lock(_ name: String) -> String { locks + name }

    static func namespace(_ name: String) -> String { namespaces + name }

    static func config(_ key: ConfigKey) -> String { configs + key.description }

    /// Store prefix for a listing or watch prefix. A bare namespace name means the whole namespace.
    static func configPrefix(_ prefix: KeyPrefix) -> String { configs + prefix.keyPrefix }

    static func configKey(fromStoreKey storeKey: String) -> String {
        String(storeKey.dropFirst(configs.count))
    }

    /// History entries of a key sort by a zero-padded sequence number; "@" cannot occur in a key.
    static func historyPrefix(_ key: ConfigKey) -> String { history + key.description + "@" }

    /// `history/KEY@SEQUENCE`, the sequence zero-padded to 20 digits so that keys sort by it.
    static func history(_ key: ConfigKey, sequence: Int64) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.history.utf8.count + key.description.utf8.count + 21)
        bytes += Self.history.utf8
        bytes += key.description.utf8
        bytes.append(UInt8(ascii: "@"))
        ASCIIDecimal.append(sequence, width: 20, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    static func historyNamespacePrefix(_ namespace: String) -> String { history + namespace + "/" }
}
