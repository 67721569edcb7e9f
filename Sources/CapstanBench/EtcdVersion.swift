import Foundation

/// What `etcd --version` says, on one line.
enum EtcdVersion {
    static func read(executable: String) -> String {
        let process = Process()
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--version"]
        process.standardOutput = output
        process.standardError = output
        do {
            try process.run()
        } catch {
            return "unknown (\(executable) --version failed: \(error))"
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
        let wanted = lines.filter { $0.hasPrefix("etcd Version") || $0.hasPrefix("Go Version") }
        return (wanted.isEmpty ? lines : wanted).joined(separator: ", ")
    }
}
