import Foundation

/// A directory only its owner may enter, with every file directly in it the owner's only (a
/// server's or an agent's data directory), as etcd and Vault keep theirs: the store, the secret
/// key, a node's identity are not for other local users to read.
public enum PrivateDirectory {
    /// Creates `path` with mode 0700 (its missing parents as usual), or tightens an existing one to
    /// 0700 and the regular files directly in it to 0600 at most: every one, or only those named
    /// in `files`. Subdirectories and symbolic links are left as they are.
    /// - Returns: one line per item tightened, e.g. `capstan-data 755 -> 700`, for the caller to
    ///   say once (the next start finds nothing to tighten).
    /// - Throws: `CapstanError` naming the path and the system's reason.
    public static func prepare(_ path: String, files: Set<String>? = nil) throws(CapstanError) -> [String] {
        var status = stat()
        if lstat(path, &status) != 0 {
            guard errno == ENOENT else { throw failure("cannot use the data directory \(path)") }
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            } catch {
                throw CapstanError(.invalidArgument, "cannot create the data directory \(path): \(error.localizedDescription)")
            }
            // Whatever the umask made of it.
            guard chmod(path, 0o700) == 0 else { throw failure("cannot make the data directory \(path) private") }
            return []
        }
        guard status.st_mode & S_IFMT == S_IFDIR else {
            throw CapstanError(.invalidArgument, "the data directory \(path) is not a directory")
        }
        var tightened: [String] = []
        try tighten(path, mode: status.st_mode, to: 0o700, into: &tightened)
        let entries: [String]
        do { entries = try FileManager.default.contentsOfDirectory(atPath: path).sorted() } catch {
            throw CapstanError(.invalidArgument, "cannot list the data directory \(path): \(error.localizedDescription)")
        }
        for entry in entries where files?.contains(entry) ?? true {
            let file = URL(fileURLWithPath: path).appendingPathComponent(entry).path
            guard lstat(file, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { continue }
            try tighten(file, mode: status.st_mode, to: status.st_mode & 0o700, into: &tightened)
        }
        return tightened
    }

    /// Drops `path`'s group and other bits when it has any.
    private static func tighten(_ path: String, mode: mode_t, to target: mode_t, into tightened: inout [String]) throws(CapstanError) {
        let permissions = mode & 0o777
        guard permissions & 0o077 != 0 else { return }
        guard chmod(path, target) == 0 else { throw failure("cannot make \(path) private (mode \(String(permissions, radix: 8)))") }
        tightened.append("\(path) \(String(permissions, radix: 8)) -> \(String(target, radix: 8))")
    }

    private static func failure(_ what: String) -> CapstanError {
        CapstanError(.invalidArgument, "\(what): \(String(cString: strerror(errno)))")
    }
}
