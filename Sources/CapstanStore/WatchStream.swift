/// The changes a watch delivers: batches of events in revision order, each batch holding whole
/// revisions. Ends when the consuming task is cancelled; fails with `StoreError.compacted` when
/// the start revision is no longer available.
public struct WatchStream: AsyncSequence, Sendable {
    public typealias Element = [WatchEvent]

    private let makeCursor: @Sendable () -> any WatchCursor

    public init(_ makeCursor: @escaping @Sendable () -> any WatchCursor) {
        self.makeCursor = makeCursor
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(cursor: makeCursor())
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let cursor: any WatchCursor

        public mutating func next() async throws -> [WatchEvent]? {
            try await cursor.next()
        }
    }
}

/// What an engine implements to feed a `WatchStream`.
public protocol WatchCursor: AnyObject, Sendable {
    /// The next batch of events; nil when the watch ends.
    func next() async throws -> [WatchEvent]?
}

/// Where a catching-up watch reads past events from.
public protocol WatchHistory: Sendable {
    /// Events on `range` with revisions in `from...through`, in revision order.
    /// - Throws: `StoreError.compacted` when `from` is below the compaction point.
    func events(in range: KeyRange, from: Int64, through: Int64) async throws -> [WatchEvent]
}
