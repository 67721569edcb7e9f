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
    /// Which check and reload commands may run: a template with one this refuses is not applied.
    var policy: ExecPolicy = .all
    let logger: Logger
    /// Longest a check or reload command may run.
    var commandTimeout: Duration = .seconds(60)
    /// How large a rendered file may be and how long its render may take.
    var renderLimits = RenderLimits()

    /// Applies one template for the node described by `node` and answers the report.
    func apply(_ assignment: TemplateAssignment, node: ConfigValue) async -> TemplateReport {
        let reporter = TemplateReporter(assignment: assignment, logger: logger)
        let spec = assignment.spec
        do throws(ApplyFailure) {
            let (directory, bytes) = try render(assignment, node: node)
            let previous = (contents: directory.contents(), mode: directory.mode())
            if previous.contents == bytes {
                // Same bytes: no write, no reload; only the mode is put right.
                if previous.mode != spec.mode { directory.setMode(spec.mode) }
                return reporter.report(.applied)
            }
            let temporary = "." + directory.name + ".capstan-\(UUID().uuidString.prefix(8))"
            try await writeChecked(bytes, into: directory, as: temporary, spec: spec)
            do {
                try directory.swapIn(temporary)
            } catch {
                throw ApplyFailure("cannot move the rendered file into \(spec.dest): \(error)")
            }
            logger.info("template written", metadata: ["template": "\(assignment.name)", "dest": "\(spec.dest)"])
            try await reload(spec, in: directory, restoring: previous, through: temporary)
            return reporter.report(.applied)
        } catch {
            return reporter.report(.failed, error.message)
        }
    }

    /// The destination's directory, opened and checked, and the rendered bytes; nothing is
    /// written yet.
    private func render(_ assignment: TemplateAssignment, node: ConfigValue) throws(ApplyFailure) -> (DestinationDirectory, Data) {
        if let problem = assignment.problem { throw ApplyFailure(problem) }
        guard let source = assignment.source, let data = assignment.data else { throw ApplyFailure("nothing to render") }
        let spec = assignment.spec
        if let refusal = refusal(of: spec) { throw ApplyFailure(refusal) }
        // The destination's directory is opened once and checked as opened: every later step
        // goes through it, so a path component swapped for a symbolic link meanwhile cannot
        // send the write elsewhere.
        do {
            let directory = try PathSafety.open(spec.dest, allowed: allowedPaths)
            let rendered = try TemplateRenderer.render(source, context: data.merging(.object(["node": node])), limits: renderLimits)
            return (directory, Data(rendered.utf8))
        } catch {
            throw ApplyFailure(error.description)
        }
    }

    /// Writes `bytes` to `temporary` beside the destination and runs the template's check on it;
    /// a failed check removes it.
    private func writeChecked(
        _ bytes: Data, into directory: DestinationDirectory, as temporary: String, spec: TemplateSpec
    ) async throws(ApplyFailure) {
        do {
            try FileWriting.write(bytes, in: directory.descriptor, name: temporary, mode: spec.mode)
        } catch {
            throw ApplyFailure("cannot write \(directory.path(of: temporary)): \(error)")
        }
        guard let check = spec.check else { return }
        let command = check.replacingOccurrences(of: "{{src}}", with: directory.path(of: temporary))
        let result = await CommandRunner.run(command, shell: spec.shell, timeout: commandTimeout, policy: policy)
        guard result.succeeded else {
            unlinkat(directory.descriptor, temporary, 0)
            throw ApplyFailure("check \(check.quoted) failed: \(result.summary); the file was left as it was")
        }
    }

    /// Runs the template's reload, after its splay; when it fails, puts `previous` back (or
    /// removes the new file when there was none) by way of `temporary`.
    private func reload(
        _ spec: TemplateSpec, in directory: DestinationDirectory, restoring previous: (contents: Data?, mode: Int?),
        through temporary: String
    ) async throws(ApplyFailure) {
        guard let reload = spec.reload else { return }
        if spec.splayMilliseconds > 0 {
            try? await Task.sleep(for: .milliseconds(Int64.random(in: 0...spec.splayMilliseconds)))
        }
        let result = await CommandRunner.run(reload, shell: spec.shell, timeout: commandTimeout, policy: policy)
        if result.succeeded { return }
        // The service did not take the new file: put the old one back.
        var restored = "the previous file was restored"
        do {
            if let contents = previous.contents {
                try FileWriting.write(contents, in: directory.descriptor, name: temporary, mode: previous.mode ?? spec.mode)
                try directory.swapIn(temporary)
            } else {
                unlinkat(directory.descriptor, directory.name, 0)
                fsync(directory.descriptor)
                restored = "the new file was removed (there was none before)"
            }
        } catch {
            restored = "restoring the previous file failed too: \(error)"
        }
        throw ApplyFailure("reload \(reload.quoted) failed: \(result.summary); \(restored)")
    }
}

/// Why a template was not applied, as its report says.
struct ApplyFailure: Error {
    let message: String

    init(_ message: String) {
        self.message = message
    }
}

/// Makes a template's reports: secret values never leave the node in a report or a log line,
/// whatever a check or reload command printed.
struct TemplateReporter {
    let assignment: TemplateAssignment
    let logger: Logger
    private let secretValues: [String]

    init(assignment: TemplateAssignment, logger: Logger) {
        self.assignment = assignment
        self.logger = logger
        if case .object(let root)? = assignment.data, case .object(let secrets)? = root["capstan_secrets"] {
            secretValues = secrets.values.compactMap { if case .string(let text) = $0, !text.isEmpty { text } else { nil } }
        } else {
            secretValues = []
        }
    }

    func report(_ state: TemplateState, _ error: String? = nil) -> TemplateReport {
        var error = error
        for value in secretValues { error = error?.replacingOccurrences(of: value, with: "[secret]") }
        if let error {
            logger.warning("template failed", metadata: ["template": "\(assignment.name)", "error": "\(error)"])
        }
        return TemplateReport(template: assignment.name, revision: assignment.revision, state: state, error: error, time: Date())
    }
}

extension TemplateApplier {
    /// Why this agent does not apply `spec` at all, before anything is written.
    func refusal(of spec: TemplateSpec) -> String? {
        // The server refuses such a mode; a template stored before it did is refused here.
        if let refusal = spec.worldWritableRefusal { return refusal }
        // A file swapped in without its check, or without the reload that makes it take effect,
        // is not what the template asked for.
        for (flag, command) in [("--check", spec.check), ("--reload", spec.reload)] {
            if let command, let refusal = policy.refusal(ofCommandLine: command, shell: spec.shell) {
                return "\(flag) \(command.quoted) refused: \(refusal); the file was left as it was"
            }
        }
        return nil
    }
}

/// Where templates may write: absolute paths inside an allowed directory, no `..`, and no
/// symbolic link on the way out of it.
enum PathSafety {
    /// Opens the directory of `path` and checks it as opened (by the descriptor's own path, so
    /// that what is checked is what is written into), and that `path` is not a symbolic link.
    static func open(_ path: String, allowed: [String]) throws(CapstanError) -> DestinationDirectory {
        guard path.hasPrefix("/") else { throw CapstanError(.invalidArgument, "destination \(path) is not an absolute path") }
        let segments = path.split(separator: "/")
        guard !segments.contains(".."), !segments.contains("."), !path.hasSuffix("/") else {
            throw CapstanError(.invalidArgument, "destination \(path) has \".\" or \"..\" in it")
        }
        guard !allowed.isEmpty else {
            throw CapstanError(
                .invalidArgument, "destination \(path) refused: this agent allows no template destinations (start it with --allow-path DIR)")
        }
        let directory = (path as NSString).deletingLastPathComponent
        let descriptor = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw CapstanError(.invalidArgument, "destination directory \(directory) does not exist")
        }
        let opened = DestinationDirectory(descriptor: descriptor, name: (path as NSString).lastPathComponent)
        guard let realDirectory = opened.realPath else {
            throw CapstanError(.invalidArgument, "destination directory \(directory) cannot be resolved")
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
        var info = stat()
        if fstatat(descriptor, opened.name, &info, AT_SYMLINK_NOFOLLOW) == 0, (info.st_mode & S_IFMT) == S_IFLNK {
            throw CapstanError(.invalidArgument, "destination \(path) is a symbolic link; refusing to write through it")
        }
        return opened
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// A destination's directory, held open: reads, writes and the swap go through the descriptor
/// (`openat`, `renameat`), never through the path again. Closed when released.
final class DestinationDirectory: Sendable {
    let descriptor: Int32
    /// The destination's file name in the directory.
    let name: String

    init(descriptor: Int32, name: String) {
        self.descriptor = descriptor
        self.name = name
    }

    deinit { close(descriptor) }

    /// Where the directory is now, as the kernel knows it.
    var realPath: String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/fd/\(descriptor)", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A path for `file` in the directory, for commands (a check gets the temporary file's).
    func path(of file: String) -> String {
        (realPath ?? "/proc/self/fd/\(descriptor)") + "/" + file
    }

    /// The destination's bytes, or nil when there is no such file (a symbolic link is not followed).
    func contents() -> Data? {
        let file = openat(descriptor, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard file >= 0 else { return nil }
        defer { close(file) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = read(file, &buffer, buffer.count)
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            data.append(contentsOf: buffer[0..<count])
        }
        return data
    }

    func mode() -> Int? {
        var info = stat()
        guard fstatat(descriptor, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return nil }
        return Int(info.st_mode) & 0o7777
    }

    func setMode(_ mode: Int) {
        fchmodat(descriptor, name, mode_t(mode), 0)
    }

    /// Renames `temporary` over the destination and syncs the directory; the temporary file is
    /// removed when the rename fails.
    func swapIn(_ temporary: String) throws {
        guard renameat(descriptor, temporary, descriptor, name) == 0 else {
            let reason = String(cString: strerror(errno))
            unlinkat(descriptor, temporary, 0)
            throw AgentError(reason)
        }
        fsync(descriptor)
    }
}

enum FileWriting {
    /// Writes `data` to a new file at `path` with `mode`, fsynced. The file must not exist yet
    /// (nor be a symlink); when a step fails, the partial file is removed.
    static func write(_ data: Data, to path: String, mode: Int) throws {
        try write(data, in: AT_FDCWD, name: path, mode: mode)
    }

    /// The same, for `name` in the directory open as `directory` (or a path, with `AT_FDCWD`).
    static func write(_ data: Data, in directory: Int32, name: String, mode: Int) throws {
        let descriptor = openat(directory, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(mode))
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
            unlinkat(directory, name, 0)
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
/// expanded), or through `/bin/sh -c` when the template says so; never one the agent's
/// `ExecPolicy` refuses.
enum CommandRunner {
    struct Result: Sendable {
        var status: Int32?
        var timedOut: Bool
        var output: String
        /// Why the policy refused the command (it did not run).
        var refusal: String?

        var succeeded: Bool { status == 0 && !timedOut && refusal == nil }

        var summary: String {
            if let refusal { return "refused: \(refusal)" }
            let tail = output.trimmingCharacters(in: .whitespacesAndNewlines).suffix(400)
            let what = timedOut ? "timed out" : status.map { "exit status \($0)" } ?? "could not start"
            return tail.isEmpty ? what : "\(what): \(tail)"
        }
    }

    static func run(_ command: String, shell: Bool, timeout: Duration, policy: ExecPolicy) async -> Result {
        let launch: Launch
        switch policy.launch(commandLine: command, shell: shell) {
        case .success(let found): launch = found
        case .failure(.refused(let refusal)): return Result(status: nil, timedOut: false, output: "", refusal: refusal)
        case .failure(.failed(let failure)): return Result(status: nil, timedOut: false, output: failure)
        }
        let process = Process()
        // The executable the policy found (argv[0] looked up on PATH, as a shell would) starts
        // itself. Foundation starts the child in a process group of its own, so a timeout kills
        // everything the command started.
        process.executableURL = URL(fileURLWithPath: launch.executable)
        process.arguments = launch.arguments
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

    /// Splits `command` into words as a shell would (quotes honoured, nothing expanded).
    static func split(_ command: String) throws(CapstanError) -> [String] {
        try CommandWords.split(command)
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
