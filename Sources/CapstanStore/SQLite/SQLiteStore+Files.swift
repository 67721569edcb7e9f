import Foundation
import GRDB
import Logging

extension SQLiteStore {
    /// The suffixes of the files SQLite keeps beside the store's.
    static let companionSuffixes = ["-wal", "-shm", "-journal"]

    /// Keeps the store's file and its companions the owner's only (0600): the file is created
    /// 0600 before SQLite opens it, and SQLite creates its `-wal` and `-shm` files with the
    /// database file's permissions; files an earlier version left open to others are tightened
    /// (and logged). Not through a process-wide umask, which other threads' files would get too.
    static func keepPrivate(_ path: String, logger: Logger) throws {
        guard !path.isEmpty, path != ":memory:", !path.hasPrefix("file:") else { return }
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if descriptor >= 0 {
            Glibc.close(descriptor)
            return
        }
        guard errno == EEXIST else {
            throw StoreError(.io, "cannot create the store at \(path): \(String(cString: strerror(errno)))")
        }
        var tightened: [String] = []
        for file in [path] + companionSuffixes.map({ path + $0 }) {
            var status = stat()
            guard lstat(file, &status) == 0, status.st_mode & S_IFMT == S_IFREG, status.st_mode & 0o077 != 0 else { continue }
            guard chmod(file, status.st_mode & 0o700) == 0 else {
                throw StoreError(.io, "cannot make \(file) private: \(String(cString: strerror(errno)))")
            }
            tightened.append("\(file) \(String(status.st_mode & 0o777, radix: 8)) -> \(String(status.st_mode & 0o700, radix: 8))")
        }
        if !tightened.isEmpty {
            logger.warning(
                "the store's files were readable by other users: made them the owner's only",
                metadata: ["files": "\(tightened.joined(separator: ", "))"])
        }
    }

    /// Rebuilds the file without free pages, which keep the bytes of deleted rows, and empties the
    /// WAL: what was deleted is then gone from the files, not only from the tables.
    public func vacuum() throws {
        do {
            try pool.vacuum()
            try pool.writeWithoutTransaction { db in _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        } catch {
            throw StoreError(.io, "cannot rebuild the store file \(databasePath): \(error)", underlying: error)
        }
    }
}
