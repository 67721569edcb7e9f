/// A benchmark that cannot go on: a server that does not start, a request that fails.
struct BenchError: Error, CustomStringConvertible {
    var message: String

    init(_ message: String) {
        self.message = message
    }

    var description: String { message }
}
