import NIOCore
import NIOPosix
import Synchronization

/// The connections a simulated fleet (agents or etcd watchers) holds, each served on its event
/// loop and opened again after a random wait when it fails, until `stop`.
final class LoopConnections: Sendable {
    private struct State {
        var stopping = false
        var channels: [ObjectIdentifier: any Channel] = [:]
    }

    private let state = Mutex(State())
    let group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton

    /// Opens a connection with `bootstrap` (built for each attempt); when the attempt fails, or
    /// the connection ends and `reopen` says so, waits `backoff(attempt)` and opens it again.
    func open(
        host: String, port: Int, attempt: Int = 0, backoff: @escaping @Sendable (Int) -> TimeAmount?,
        reopen: @escaping @Sendable () -> Bool = { true },
        bootstrap: @escaping @Sendable (ClientBootstrap) -> ClientBootstrap
    ) {
        let again: @Sendable () -> Void = { [self] in
            guard !state.withLock({ $0.stopping }), let wait = backoff(attempt + 1) else { return }
            group.next().scheduleTask(in: wait) {
                self.open(host: host, port: port, attempt: attempt + 1, backoff: backoff, reopen: reopen, bootstrap: bootstrap)
            }
        }
        bootstrap(ClientBootstrap(group: group)).connect(host: host, port: port).whenComplete { result in
            guard case .success(let channel) = result else { return again() }
            let kept = self.state.withLock { state -> Bool in
                guard !state.stopping else { return false }
                state.channels[ObjectIdentifier(channel)] = channel
                return true
            }
            guard kept else { return channel.close(promise: nil) }
            channel.closeFuture.whenComplete { _ in
                self.state.withLock { _ = $0.channels.removeValue(forKey: ObjectIdentifier(channel)) }
                if reopen() { again() }
            }
        }
    }

    /// Closes every connection and opens none again; returns once all are closed.
    func stop() async {
        let channels = state.withLock { state in
            state.stopping = true
            return Array(state.channels.values)
        }
        for channel in channels { channel.close(promise: nil) }
        for channel in channels { try? await channel.closeFuture.get() }
    }
}
