import ArgumentParser
import Foundation

/// A file the user names on the command line, read whole: a regular file, or a pipe, FIFO or
/// process substitution (`<(cmd)`, `/dev/fd/63`), which has no size to read up to and can be
/// read only once, from start to end.
enum InputFile {
    /// Reads `path` to its end.
    /// - Throws: `ValidationError` naming the file and the system's reason.
    static func read(_ path: String) throws -> Data {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ValidationError("cannot read \(path): \(reason(errno))") }
        defer { close(descriptor) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count == 0 { return data }
            if count < 0 {
                if errno == EINTR { continue }
                throw ValidationError("cannot read \(path): \(reason(errno))")
            }
            data.append(contentsOf: buffer[0..<count])
        }
    }

    private static func reason(_ code: Int32) -> String {
        String(cString: strerror(code)).lowercased()
    }
}
