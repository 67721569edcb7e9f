import CapstanCore

/// A failed call: the server's problem document when it answered one, else what went wrong.
public struct ClientError: Error, Sendable, CustomStringConvertible {
    /// The server's problem, when the server answered with an error.
    public var problem: Problem?
    public var message: String

    public init(problem: Problem) {
        self.problem = problem
        var message = problem.detail
        if let line = problem.line, let column = problem.column, !message.contains("line \(line)") {
            message += " (line \(line), column \(column))"
        } else if problem.line == nil, let column = problem.column, !message.contains("column \(column)") {
            message += " (column \(column))"
        }
        self.message = message
    }

    public init(_ message: String) {
        self.problem = nil
        self.message = message
    }

    /// The problem's stable code, e.g. `invalid_content`.
    public var code: String? { problem?.code }

    public var description: String {
        guard let code else { return message }
        return "\(message) [\(code)]"
    }
}
