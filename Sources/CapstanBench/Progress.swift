import Foundation

/// A progress line on standard error; the report goes to standard output.
func progress(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
