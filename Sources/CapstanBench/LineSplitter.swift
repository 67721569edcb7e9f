import NIOCore

/// Cuts a byte stream into lines, whatever the chunk boundaries; drops the `\n` and any `\r`.
struct LineSplitter {
    private var pending: [UInt8] = []

    /// Adds `chunk` and returns the lines it completes.
    mutating func append(_ chunk: ByteBuffer) -> [String] {
        var lines: [String] = []
        for byte in chunk.readableBytesView {
            if byte == UInt8(ascii: "\n") {
                if pending.last == UInt8(ascii: "\r") { pending.removeLast() }
                lines.append(String(decoding: pending, as: UTF8.self))
                pending.removeAll(keepingCapacity: true)
            } else {
                pending.append(byte)
            }
        }
        return lines
    }
}
