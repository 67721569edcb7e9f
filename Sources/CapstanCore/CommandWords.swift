/// A command line split into argv words, as a shell would split it, with nothing expanded.
public enum CommandWords {
    /// Splits `command` into words: whitespace separates, single quotes keep everything, double
    /// quotes keep everything but `\"` and `\\`, a backslash outside quotes escapes one character.
    public static func split(_ command: String) throws(CapstanError) -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var iterator = Array(command).makeIterator()
        while let character = iterator.next() {
            switch character {
            case "'":
                inWord = true
                var closed = false
                while let next = iterator.next() {
                    if next == "'" {
                        closed = true
                        break
                    }
                    current.append(next)
                }
                guard closed else { throw CapstanError(.invalidArgument, "command \(command.quoted) has an unclosed ' quote") }
            case "\"":
                inWord = true
                var closed = false
                while let next = iterator.next() {
                    if next == "\"" {
                        closed = true
                        break
                    }
                    if next == "\\", let escaped = iterator.next() {
                        if escaped != "\"" && escaped != "\\" { current.append("\\") }
                        current.append(escaped)
                    } else {
                        current.append(next)
                    }
                }
                guard closed else { throw CapstanError(.invalidArgument, "command \(command.quoted) has an unclosed \" quote") }
            case "\\":
                inWord = true
                if let escaped = iterator.next() { current.append(escaped) }
            case _ where character.isWhitespace:
                if inWord {
                    words.append(current)
                    current = ""
                    inWord = false
                }
            default:
                inWord = true
                current.append(character)
            }
        }
        if inWord { words.append(current) }
        return words
    }
}
