import CapstanCore
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Applies templates on the node: render, check, swap atomically, reload, restore on a failed
/// reload; writes nothing (and reloads nothing) when the rendered bytes are what the file holds.
struct TemplateApplier: Sendable {
    let allowedPaths: [String]
    let logger: Logger
    /// Longest a check or reload command may run.
    var commandTimeout: Duration = .seconds(60)

    /// Applies one template for the node described by `node` and answers the report.
    func apply(_ assignment: TemplateAssignment, node: ConfigValue) async -> TemplateReport {
        func report(_ state: TemplateState, _ error: String? = nil) -> TemplateReport {
            if let error {
                logger.warning("template failed", metadata: ["template": "\(assignment.name)", "error": "\(error)"])
            }
            return TemplateReport(template: assignment.name, revision: assignment.revision, state: state, error: error, time: Date())
        }
        if let problem = assignment.problem { return report(.failed, problem) }
        guard let source = assignment.source, let data = assignment.data else { return report(.failed, "nothing to render") }
        let spec = assignment.spec
        do {
            try PathSafety.check(spec.dest, allowed: allowedPaths)
        } catch {
            return report(.failed, error.description)
        }
        let rendered: String
        do {
            rendered = try TemplateRenderer.render(source, context: data.merging(.object(["node": node])))
        } catch {
            return report(.failed, error.description)
        }
        let bytes = Data(rendered.utf8)
        let previous = FileManager.default.contents(atPath: spec.dest)
        if previous == bytes {
            // Same bytes: no write, no reload; only the mode is put right.
            if currentMode(spec.dest) != spec.mode { chmod(spec.dest, mode_t(spec.mode)) }
            return report(.applied)
        }
        let previousMode = currentMode(spec.dest)
        let directory = (spec.dest as NSString).deletingLastPathComponent
        let temporary = directory + "/." + (spec.dest as NSString).lastPathComponent + ".capstan-\(UUID().uuidString.prefix(8))"
        do {
            try FileWriting.write(bytes, to: temporary, mode: spec.mode)
        } catch {
            return report(.failed, "cannot write \(temporary): \(error)")
        }
        if let check = spec.check {
            let command = check.replacingOccurrences(of: "{{src}}", with: temporary)
            let result = await CommandRunner.run(command, shell: spec.shell, timeout: commandTimeout)
            guard result.succeeded else {
                unlink(temporary)
                return report(.failed, "check \(check.quoted) failed: \(result.summary); the file was left as it was")
            }
        }
        guard rename(temporary, spec.dest) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            return report(.failed, "cannot move the rendered file into \(spec.dest): \(reason)")
        }
        FileWriting.syncDirectory(directory)
        logger.info("template written", metadata: ["template": "\(assignment.name)", "dest": "\(spec.dest)"])
        guard let reload = spec.reload else { return report(.applied) }
        if spec.splayMilliseconds > 0 {
            try? await Task.sleep(for: .milliseconds(Int64.random(in: 0...spec.splayMilliseconds)))
        }
        let result = await CommandRunner.run(reload, shell: spec.shell, timeout: commandTimeout)
        if result.succeeded { return report(.applied) }
        // The service did not take the new file: put the old one back.
        var restored = "the previous file was restored"
        do {
            if let previous {
                try FileWriting.write(previous, to: temporary, mode: previousMode ?? spec.mode)
                guard rename(temporary, spec.dest) == 0 else { throw AgentError(String(cString: strerror(errno))) }
            } else {
                unlink(spec.dest)
                restored = "the new file was removed (there was none before)"
            }
            FileWriting.syncDirectory(directory)
        } catch {
            restored = "restoring the previous file failed too: \(error)"
        }
        return report(.failed, "reload \(reload.quoted) failed: \(result.summary); \(restored)")
    }

    private func currentMode(_ path: String) -> Int? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return Int(info.st_mode) & 0o7777
    }
}

/// Where templates may write: absolute paths inside an allowed directory, no `..`, and no
/// symbolic link on the way out of it.
enum PathSafety {
    static func check(_ path: String, allowed: [String]) throws(CapstanError) {
        guard path.hasPrefix("/") else { throw CapstanError(.invalidArgument, "destination \(path) is not an absolute path") }
        let segments = path.split(separator: "/")
        guard !segments.contains(".."), !segments.contains(".") else {
            throw CapstanError(.invalidArgument, "destination \(path) has \".\" or \"..\" in it")
        }
        guard !allowed.isEmpty else {
            throw CapstanError(
                .invalidArgument, "destination \(path) refused: this agent allows no template destinations (start it with --allow-path DIR)")
        }
        let directory = (path as NSString).deletingLastPathComponent
        guard let realDirectory = realPath(directory) else {
            throw CapstanError(.invalidArgument, "destination directory \(directory) does not exist")
        }
        var info = stat()
        if lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK {
            throw CapstanError(.invalidArgument, "destination \(path) is a symbolic link; refusing to write through it")
        }
        let inside = allowed.contains { root in
            guard let realRoot = realPath(root) else { return false }
            return realDirectory == realRoot || realDirectory.hasPrefix(realRoot.hasSuffix("/") ? realRoot : realRoot + "/")
        }
        guard inside else {
            throw CapstanError(
                .invalidArgument,
                "destination \(path) is outside the agent's --allow-path directories (\(allowed.joined(separator: ", ")))")
        }
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

enum FileWriting {
    /// Writes `data` to a new file at `path` with `mode`, fsynced. The file must not exist yet
    /// (nor be a symlink); when a step fails, the partial file is removed.
    static func write(_ data: Data, to path: String, mode: Int) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(mode))
        guard descriptor >= 0 else { throw AgentError(String(cString: strerror(errno))) }
        defer { close(descriptor) }
        do {
            var offset = 0
            try data.withUnsafeBytes { buffer in
                while offset < buffer.count {
                    let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                    guard written > 0 else { throw AgentError(String(cString: strerror(errno))) }
                    offset += written
                }
            }
            // The umask may have narrowed the mode at creation.
            fchmod(descriptor, mode_t(mode))
            guard fsync(descriptor) == 0 else { throw AgentError(String(cString: strerror(errno))) }
        } catch {
            unlink(path)
            throw error
        }
    }

    /// Replaces the file at `path` with `data` in one step: a new file beside it (`PATH.tmp`, one
    /// a crash left there is removed first), fsynced, then renamed over it.
    static func replace(_ path: String, with data: Data, mode: Int) throws {
        let temporary = path + ".tmp"
        unlink(temporary)
        try write(data, to: temporary, mode: mode)
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw AgentError("cannot rename \(temporary) to \(path): \(reason)")
        }
        syncDirectory((path as NSString).deletingLastPathComponent)
    }

    static func syncDirectory(_ path: String) {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        fsync(descriptor)
        close(descriptor)
    }
}

/// Runs a check or reload command: as argv (split like a shell would, quotes honoured, nothing
/// expanded), or through `/bin/sh -c` when the template says so.
enum CommandRunner {
    struct Result: Sendable {
        var status: Int32?
        var timedOut: Bool
        var output: String

        var succeeded: Bool { status == 0 && !timedOut }

        var summary: String {
            let tail = output.trimmingCharacters(in: .whitespacesAndNewlines).suffix(400)
            let what = timedOut ? "timed out" : status.map { "exit status \($0)" } ?? "could not start"
            return tail.isEmpty ? what : "\(what): \(tail)"
        }
    }

    static func run(_ command: String, shell: Bool, timeout: Duration) async -> Result {
        let arguments: [String]
        if shell {
            arguments = ["/bin/sh", "-c", command]
        } else {
            do { arguments = try split(command) } catch { return Result(status: nil, timedOut: false, output: "\(error)") }
            guard !arguments.isEmpty else { return Result(status: nil, timedOut: false, output: "empty command") }
        }
        let process = Process()
        // argv[0] is looked up on PATH, as a shell would. Foundation starts the child in a
        // process group of its own, so a timeout kills everything the command started.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["--"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return Result(status: nil, timedOut: false, output: "\(error)")
        }
        // Read on a thread of its own with read(2): a background process that inherited the
        // pipe may keep it open after the command ended, and the caller must not wait for it.
        let collected = OutputBuffer()
        let descriptor = pipe.fileHandleForReading.fileDescriptor
        Thread {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = read(descriptor, &buffer, buffer.count)
                if count < 0, errno == EINTR { continue }
                if count <= 0 { break }
                collected.append(buffer[0..<count])
            }
        }.start()
        // A command counts as running while anything it started holds its output open (a
        // background process, say); at the timeout its whole process group is killed.
        let deadline = ContinuousClock.now + timeout
        var timedOut = false
        while process.isRunning {
            if ContinuousClock.now >= deadline {
                timedOut = true
                let pid = process.processIdentifier
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
                while process.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
                break
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        // Output written just before the end may still be in the pipe.
        try? await Task.sleep(for: .milliseconds(20))
        return Result(status: process.terminationStatus, timedOut: timedOut, output: collected.text)
    }

    /// Splits `command` into words: whitespace separates, single quotes keep everything, double
    /// quotes keep everything but `\"` and `\\`, a backslash outside quotes escapes one character.
    static func split(_ command: String) throws(CapstanError) -> [String] {
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

/// Output of a command, gathered by its reading thread.
final class OutputBuffer: Sendable {
    private let data = Mutex<[UInt8]>([])
    /// At most this much is kept (the end of a report shows its tail).
    static let limit = 16 * 1024

    func append(_ bytes: ArraySlice<UInt8>) {
        data.withLock { data in
            data.append(contentsOf: bytes)
            if data.count > Self.limit * 2 { data.removeFirst(data.count - Self.limit) }
        }
    }

    var text: String { data.withLock { String(decoding: $0.suffix(Self.limit), as: UTF8.self) } }
}
