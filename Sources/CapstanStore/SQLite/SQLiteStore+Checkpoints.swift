import GRDB

extension SQLiteStore {
    /// Copies the WAL into the database file from a connection of its own, now and then.
    ///
    /// SQLite's automatic checkpoint runs inside the commit that crosses the threshold, on the
    /// writer thread: every few hundred writes one commit would copy pages and sync the database
    /// file while every other writer waits. A passive checkpoint here blocks neither the writer
    /// nor readers; the writer restarts the WAL from the top once it has all been copied.
    func runCheckpoints(interval: Duration = .milliseconds(250)) async throws {
        var configuration = Configuration()
        configuration.label = "capstan.store.checkpointer"
        let checkpointer = try DatabaseQueue(path: databasePath, configuration: configuration)
        while !Task.isCancelled {
            try await Task.sleep(for: interval)
            do {
                try await checkpointer.writeWithoutTransaction { db in
                    _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(PASSIVE)")
                }
            } catch {
                logger.warning("background checkpoint failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
