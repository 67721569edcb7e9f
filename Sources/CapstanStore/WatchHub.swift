import Synchronization

/// Fans committed events out to in-process watchers.
///
/// The engine publishes every committed revision in order. A watcher subscribes, learns the last
/// published revision L, reads revisions up to L from history, then consumes live events (all
/// above L): no gap and no duplicate. A watcher that falls more than `bufferLimit` events behind
/// is dropped from the hub and catches up from history again, so a slow client costs memory
/// bounded by the limit, not by the write rate.
public final class WatchHub: Sendable {
    private struct State {
        var lastPublished: Int64
        var subscriptions: [ObjectIdentifier: WatchSubscription] = [:]
    }

    private let state: Mutex<State>
    public let bufferLimit: Int
    /// Value bytes a watcher may fall behind by, whatever the event count.
    public let bufferByteLimit: Int

    public init(revision: Int64, bufferLimit: Int = 10_000, bufferByteLimit: Int = 64 << 20) {
        self.state = Mutex(State(lastPublished: revision))
        self.bufferLimit = bufferLimit
        self.bufferByteLimit = bufferByteLimit
    }

    /// Number of live subscriptions (open watches).
    public var count: Int { state.withLock { $0.subscriptions.count } }

    /// The last revision published.
    public var revision: Int64 { state.withLock { $0.lastPublished } }

    /// Publishes the events of committed revisions up to `revision`, in order.
    public func publish(_ events: [WatchEvent], revision: Int64) {
        state.withLock { state in
            state.lastPublished = max(state.lastPublished, revision)
            guard !events.isEmpty else { return }
            var dropped: [ObjectIdentifier] = []
            for (id, subscription) in state.subscriptions {
                let matching = events.filter { subscription.range.contains($0.kv.key) }
                if !matching.isEmpty, !subscription.deliver(matching, limit: bufferLimit, byteLimit: bufferByteLimit) {
                    dropped.append(id)
                }
            }
            for id in dropped { state.subscriptions[id] = nil }
        }
    }

    /// Subscribes to live events on `range`; answers the subscription and the last revision
    /// published before it (every later revision reaches the subscription).
    public func subscribe(_ range: KeyRange) -> (WatchSubscription, Int64) {
        let subscription = WatchSubscription(range: range)
        let revision = state.withLock { state in
            state.subscriptions[ObjectIdentifier(subscription)] = subscription
            return state.lastPublished
        }
        return (subscription, revision)
    }

    /// Drops every subscription as if it had overflowed: each catches up from history again
    /// (and learns there if what it missed is gone). For engines whose feed lost continuity.
    public func dropAll() {
        let dropped = state.withLock { state in
            defer { state.subscriptions = [:] }
            return Array(state.subscriptions.values)
        }
        for subscription in dropped { subscription.overflow() }
    }

    public func unsubscribe(_ subscription: WatchSubscription) {
        _ = state.withLock { $0.subscriptions.removeValue(forKey: ObjectIdentifier(subscription)) }
        subscription.cancel()
    }
}

/// One watcher's buffer of live events.
public final class WatchSubscription: Sendable {
    public enum Signal: Sendable {
        case events([WatchEvent])
        /// The watcher fell too far behind and was dropped; it must catch up from history.
        case overflow
        case cancelled
    }

    private struct State {
        var buffer: [WatchEvent] = []
        var bufferedBytes = 0
        var waiter: CheckedContinuation<Signal, Never>?
        var overflowed = false
        var cancelled = false
    }

    let range: KeyRange
    private let state = Mutex(State())

    init(range: KeyRange) {
        self.range = range
    }

    /// Adds events; answers false when the buffer overflowed (the subscription is then dead).
    func deliver(_ events: [WatchEvent], limit: Int, byteLimit: Int) -> Bool {
        let (waiter, signal, alive): (CheckedContinuation<Signal, Never>?, Signal?, Bool) = state.withLock { state in
            guard !state.cancelled, !state.overflowed else { return (nil, nil, false) }
            if let waiter = state.waiter {
                state.waiter = nil
                return (waiter, .events(events), true)
            }
            let bytes = events.reduce(0) { $0 + $1.kv.value.count + $1.kv.key.utf8.count }
            if state.buffer.count + events.count > limit || state.bufferedBytes + bytes > byteLimit {
                state.overflowed = true
                state.buffer = []
                state.bufferedBytes = 0
                return (nil, nil, false)
            }
            state.buffer.append(contentsOf: events)
            state.bufferedBytes += bytes
            return (nil, nil, true)
        }
        if let waiter, let signal { waiter.resume(returning: signal) }
        return alive
    }

    /// Waits for the next events, an overflow, or cancellation.
    func next() async -> Signal {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Signal, Never>) in
                let ready: Signal? = state.withLock { state in
                    if state.cancelled { return .cancelled }
                    if state.overflowed { return .overflow }
                    if !state.buffer.isEmpty {
                        defer {
                            state.buffer = []
                            state.bufferedBytes = 0
                        }
                        return .events(state.buffer)
                    }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            cancel()
        }
    }

    func cancel() {
        let waiter = state.withLock { state in
            state.cancelled = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: .cancelled)
    }

    /// Marks the subscription overflowed: its watcher catches up from history.
    func overflow() {
        let waiter = state.withLock { state in
            guard !state.cancelled else { return CheckedContinuation<Signal, Never>?.none }
            state.overflowed = true
            state.buffer = []
            state.bufferedBytes = 0
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: .overflow)
    }
}

/// A watch cursor over a hub and a history: catches up from history, then follows live events.
public actor HubWatchCursor: WatchCursor {
    private let hub: WatchHub
    private let history: any WatchHistory
    private let range: KeyRange
    /// The next revision to deliver; nil until the first call when watching from "now".
    private var nextRevision: Int64?
    private var subscription: WatchSubscription?
    /// Live events start above this revision; history covers up to it.
    private var liveAbove: Int64 = 0

    public init(hub: WatchHub, history: any WatchHistory, range: KeyRange, fromRevision: Int64?) {
        self.hub = hub
        self.history = history
        self.range = range
        self.nextRevision = fromRevision
    }

    deinit {
        if let subscription { hub.unsubscribe(subscription) }
    }

    public func next() async throws -> [WatchEvent]? {
        while !Task.isCancelled {
            if subscription == nil {
                let (subscription, published) = hub.subscribe(range)
                self.subscription = subscription
                liveAbove = published
                if nextRevision == nil { nextRevision = published + 1 }
            }
            guard let subscription, let from = nextRevision else { return nil }
            if from <= liveAbove {
                // Catch up from history in windows of revisions to bound each read.
                let through = min(liveAbove, from + 999)
                let events = try await history.events(in: range, from: from, through: through)
                nextRevision = through + 1
                if !events.isEmpty { return events }
                continue
            }
            switch await subscription.next() {
            case .events(let events):
                let fresh = events.filter { $0.revision >= from }
                if let last = fresh.last {
                    nextRevision = last.revision + 1
                    return fresh
                }
            case .overflow:
                hub.unsubscribe(subscription)
                self.subscription = nil
            case .cancelled:
                hub.unsubscribe(subscription)
                self.subscription = nil
                return nil
            }
        }
        if let subscription { hub.unsubscribe(subscription) }
        subscription = nil
        return nil
    }
}
