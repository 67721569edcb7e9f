import Foundation

extension SQLiteStore {
    public func grantLease(ttl: Int64) async throws -> Lease {
        guard ttl > 0 else {
            throw StoreError(.invalidArgument, "lease TTL must be at least 1 second, got \(ttl)")
        }
        let lease = Lease(id: LeaseID.random(in: 1...LeaseID.max), ttl: ttl)
        _ = try await submit(.grant(lease))
        return lease
    }

    public func keepAlive(_ lease: LeaseID) async throws -> Int64 {
        let ttl = leaseDeadlines.withLock { deadlines -> Int64? in
            // A lease past its deadline is being revoked: it cannot be renewed any more.
            guard let entry = deadlines[lease], entry.deadline > .now else { return nil }
            deadlines[lease] = (entry.ttl, .now + .seconds(entry.ttl))
            return entry.ttl
        }
        guard let ttl else {
            throw StoreError(.leaseNotFound, "lease \(lease) not found")
        }
        return ttl
    }

    public func revokeLease(_ lease: LeaseID) async throws {
        _ = try await submit(.revoke(lease))
    }

    /// Revokes leases whose deadline passed, until cancelled.
    func runLeaseExpiry() async throws {
        while !Task.isCancelled {
            let now = ContinuousClock.now
            let expired = leaseDeadlines.withLock { deadlines in
                deadlines.filter { $0.value.deadline <= now }.map(\.key)
            }
            for lease in expired {
                do {
                    try await revokeLease(lease)
                    logger.debug("lease expired", metadata: ["lease.id": "\(lease)"])
                } catch let error as StoreError where error.code == .leaseNotFound {
                    leaseDeadlines.withLock { _ = $0.removeValue(forKey: lease) }
                } catch {
                    // Try again on the next tick; one failed write must not stop expiry for good.
                    logger.error("revoking an expired lease failed", metadata: ["lease.id": "\(lease)", "error": "\(error)"])
                }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
