/// A 1-based line and column in a document, the column counted in Unicode scalars.
struct SourcePosition: Equatable {
    var line: Int
    var column: Int

    /// The position of the byte at `offset` in UTF-8 `bytes`. "\n", "\r\n" and a lone "\r"
    /// each end a line.
    init(utf8Offset offset: Int, in bytes: some Collection<UInt8>) {
        var line = 1
        var column = 1
        var previous: UInt8 = 0
        for byte in bytes.prefix(offset) {
            switch byte {
            case UInt8(ascii: "\n") where previous == UInt8(ascii: "\r"):
                break
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                line += 1
                column = 1
            case 0x80..<0xC0:
                break  // a continuation byte belongs to the scalar already counted
            default:
                column += 1
            }
            previous = byte
        }
        self.line = line
        self.column = column
    }

    /// The position of the scalar at `offset` in `scalars`.
    init(scalarOffset offset: Int, in scalars: [Unicode.Scalar]) {
        var line = 1
        var column = 1
        var previous: Unicode.Scalar = "\0"
        for scalar in scalars.prefix(offset) {
            switch scalar {
            case "\n" where previous == "\r":
                break
            case "\n", "\r":
                line += 1
                column = 1
            default:
                column += 1
            }
            previous = scalar
        }
        self.line = line
        self.column = column
    }
}

extension CapstanError {
    /// An `invalidContent` error at `position`.
    static func invalidContent(_ message: String, at position: SourcePosition) -> CapstanError {
        CapstanError(.invalidContent, message, line: position.line, column: position.column)
    }
}
