import Foundation

/// The root token every server a test starts is bootstrapped with, and every client sends.
public enum TestAuth {
    public static let rootToken = "capstan-test-root-token-000000000001"
    /// The secret key (32 bytes, base64) the etcd replicas a test starts share.
    public static let secretKey = Data(repeating: 0x5A, count: 32).base64EncodedString()

    /// A credentials file of this test process's own, so that no test reads or writes the user's.
    public static let credentialsPath: String = {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("capstan-test-credentials-\(getpid())")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory.appendingPathComponent("credentials.json").path
    }()

    /// The environment child processes start with unless a test says otherwise.
    public static var environment: [String: String] {
        ["CAPSTAN_ROOT_TOKEN": rootToken, "CAPSTAN_TOKEN": rootToken, "CAPSTAN_CREDENTIALS": credentialsPath]
    }
}
