import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A blocking loopback TCP connection with a receive timeout, for byte-level checks.
public final class RawConnection {
    private let descriptor: Int32
    private var buffer = Data()

    /// Generous: a write is fsynced, and the whole suite runs side by side on two cores.
    public init(port: Int, timeoutSeconds: Int = 30) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EBADF) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            Glibc.close(descriptor)
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .ECONNREFUSED)
        }
    }

    public func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            // A peer that closed the connection fails the send (EPIPE) instead of killing the process.
            let count = bytes[sent...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EPIPE) }
            sent += count
        }
    }

    /// Everything up to and including `marker`; throws on timeout or end of stream.
    public func receive(until marker: String) throws -> String {
        let needle = Data(marker.utf8)
        while true {
            if let found = buffer.range(of: needle) {
                let text = String(decoding: buffer[..<found.upperBound], as: UTF8.self)
                buffer.removeSubrange(..<found.upperBound)
                return text
            }
            try readMore()
        }
    }

    /// Appends what the next read brings; throws on timeout or end of stream.
    private func readMore() throws {
        var chunk = [UInt8](repeating: 0, count: 4096)
        let count = receiveRetrying(&chunk)
        guard count > 0 else { throw POSIXError(count == 0 ? .ECONNRESET : Self.failure(errno)) }
        buffer.append(contentsOf: chunk[..<count])
    }

    /// recv(2), retried when a signal interrupts it (the suite's many children send SIGCHLD):
    /// an interrupted read is not a timeout.
    private func receiveRetrying(_ chunk: inout [UInt8]) -> Int {
        while true {
            let count = recv(descriptor, &chunk, chunk.count, 0)
            if count < 0, errno == EINTR { continue }
            return count
        }
    }

    /// What a failed read means: the receive timeout ran out, or the peer reset the connection.
    private static func failure(_ code: Int32) -> POSIXErrorCode {
        code == EAGAIN || code == EWOULDBLOCK ? .ETIMEDOUT : (POSIXErrorCode(rawValue: code) ?? .ECONNRESET)
    }

    /// A whole response with a `Content-Length` body: head and body.
    public func receiveResponse() throws -> String {
        let head = try receive(until: "\r\n\r\n")
        let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        while buffer.count < length { try readMore() }
        let body = String(decoding: buffer.prefix(length), as: UTF8.self)
        buffer.removeSubrange(..<buffer.index(buffer.startIndex, offsetBy: length))
        return head + body
    }

    /// Everything the peer sends until it ends the connection; throws on timeout (the peer held
    /// the connection open) or on a reset.
    public func receiveUntilClosed() throws -> String {
        while true {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = receiveRetrying(&chunk)
            if count == 0 { break }
            guard count > 0 else { throw POSIXError(Self.failure(errno)) }
            buffer.append(contentsOf: chunk[..<count])
        }
        defer { buffer.removeAll() }
        return String(decoding: buffer, as: UTF8.self)
    }

    /// Whether bytes (or the end) arrive within the time; nothing is read.
    public func readable(withinMilliseconds milliseconds: Int) -> Bool {
        guard buffer.isEmpty else { return true }
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&poller, 1, Int32(milliseconds)) > 0
    }

    /// Whether the peer closed the connection within the time (data that arrives is dropped).
    public func closedWithin(milliseconds: Int) -> Bool {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(milliseconds)) > 0 else { return false }
        var chunk = [UInt8](repeating: 0, count: 4096)
        return recv(descriptor, &chunk, chunk.count, Int32(MSG_DONTWAIT)) == 0
    }

    /// The local port of the connection, as the server sees the client.
    public var localPort: Int? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return result == 0 ? Int(UInt16(bigEndian: address.sin_port)) : nil
    }

    public func close() { Glibc.close(descriptor) }
}
