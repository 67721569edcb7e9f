import Foundation

/// Files only their owner may read (credentials, keys), replaced whole.
public enum PrivateFile {
    /// Writes `data` to `path` through a temporary file renamed over it: created 0600 from the
    /// start (never readable by others for a moment), never through a symbolic link, under a name
    /// nobody can guess, and synced before the rename.
    /// - Throws: the system's reason, for the caller to name the file in its own words.
    public static func replace(_ path: String, with data: Data) throws(CapstanError) {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let temporary = directory + "/." + URL(fileURLWithPath: path).lastPathComponent + ".\(UUID().uuidString).tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw CapstanError(.invalidArgument, String(cString: strerror(errno))) }
        let written = data.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor) == 0
        close(descriptor)
        guard written == data.count, synced, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw CapstanError(.invalidArgument, reason)
        }
    }
}
