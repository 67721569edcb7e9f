import Foundation
import NIOCore

/// The value every put writes: printable text of the chosen size, in both encodings needed.
struct BenchValue: Sendable {
    let bytes: ByteBuffer
    let base64: String

    init(size: Int) {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        var text = (0..<size).map { alphabet[$0 % alphabet.count] }
        if size > 1 { text[size - 1] = UInt8(ascii: "\n") }
        bytes = ByteBuffer(bytes: text)
        base64 = Data(text).base64EncodedString()
    }
}
