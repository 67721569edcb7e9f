import CapstanCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Which commands an agent runs: all (the default), none (`--no-exec`), or only those whose
/// executable file is listed (`--allow-command`). It covers every command the agent runs: jobs,
/// templates' check and reload commands, and command checks.
public enum ExecPolicy: Sendable, Hashable {
    case all
    case none
    /// The executables' absolute paths.
    case only([String])

    /// The policy of `--allow-command`: a program given by path is that file (the path must be
    /// absolute); one given by bare name is the file found for it on `PATH` now, at start-up, so a
    /// file of that name placed earlier on `PATH` later is not it.
    /// - Throws: `CapstanError` when a program is neither, or is not on `PATH`.
    public static func allowing(_ programs: [String]) throws(CapstanError) -> ExecPolicy {
        var files: [String] = []
        for program in programs {
            if let problem = Executable.problem(withName: program) {
                throw CapstanError(.invalidArgument, "--allow-command \(program.quoted): \(problem)")
            }
            if program.contains("/") {
                files.append(program)
            } else if let file = Executable.find(program, path: Executable.searchPath) {
                files.append(file)
            } else {
                throw CapstanError(
                    .invalidArgument, "--allow-command \(program.quoted): no such program on PATH (give its absolute path)")
            }
        }
        return .only(files)
    }

    /// How to start `arguments` (through `/bin/sh -c` when `shell`): the executable file, found
    /// before anything starts so that what was allowed is what runs; or why it does not start.
    func launch(_ arguments: [String], shell: Bool) -> Result<Launch, LaunchFailure> {
        switch self {
        case .none:
            return .failure(.refused("this agent does not run commands (it was started with --no-exec)"))
        case .only where shell:
            // A shell runs whatever its command line says: no list can vouch for it.
            return .failure(.refused("this agent runs only the programs --allow-command lists, never through a shell"))
        case .all where shell:
            return .success(Launch(executable: "/bin/sh", arguments: ["-c"] + arguments))
        case .all:
            guard let program = arguments.first, !program.isEmpty else { return .failure(.failed("empty command")) }
            guard let file = Executable.find(program, path: Executable.searchPath) else {
                return .failure(.failed("cannot start \(program.quoted): no such program on PATH"))
            }
            return .success(Launch(executable: file, arguments: Array(arguments.dropFirst())))
        case .only(let allowed):
            guard let program = arguments.first, !program.isEmpty else { return .failure(.refused("empty command")) }
            if let problem = Executable.problem(withName: program) { return .failure(.refused(problem)) }
            guard let file = Executable.find(program, path: Executable.searchPath), allowed.contains(file) else {
                return .failure(.refused("this agent does not allow \(program.quoted) (allowed: \(allowed.joined(separator: ", ")))"))
            }
            return .success(Launch(executable: file, arguments: Array(arguments.dropFirst())))
        }
    }

    /// The same for a command line as templates and checks give it: split into argv as
    /// `CommandRunner` splits it, unless it runs through a shell.
    func launch(commandLine line: String, shell: Bool) -> Result<Launch, LaunchFailure> {
        if shell { return launch([line], shell: true) }
        do {
            return launch(try CommandRunner.split(line), shell: false)
        } catch {
            return .failure(.failed(error.message))
        }
    }

    /// The same for a command line as templates and checks give it.
    /// A line that cannot be split is refused too, where a policy narrows what runs.
    func refusal(ofCommandLine line: String, shell: Bool) -> String? {
        if case .all = self { return nil }
        if case .failure(let failure) = launch(commandLine: line, shell: shell) { return failure.message }
        return nil
    }
}

/// A command ready to start: its executable file and the arguments after argv[0].
struct Launch: Sendable, Equatable {
    var executable: String
    var arguments: [String]
}

/// Why a command did not start: the policy refused it, or it cannot start at all.
enum LaunchFailure: Error, Equatable {
    case refused(String)
    case failed(String)

    var message: String {
        switch self {
        case .refused(let message), .failed(let message): message
        }
    }
}

/// Finding the file a program name starts, as `execvp` would.
enum Executable {
    /// The agent's `PATH`, or the usual default without one.
    static var searchPath: String {
        ProcessInfo.processInfo.environment["PATH"].flatMap { $0.isEmpty ? nil : $0 } ?? "/usr/local/bin:/usr/bin:/bin"
    }

    /// The file `program` starts: itself when it has a `/` in it, else the first executable
    /// regular file of that name in a directory of `path` (relative directories are skipped).
    static func find(_ program: String, path: String) -> String? {
        if program.contains("/") { return program }
        for directory in path.split(separator: ":") where directory.hasPrefix("/") {
            let file = String(directory.hasSuffix("/") ? directory + program : directory + "/" + program)
            var info = stat()
            if stat(file, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, access(file, X_OK) == 0 { return file }
        }
        return nil
    }

    /// Why `program` cannot be matched against an allow list, or nil: an option or an assignment
    /// would be read as one by a launcher (`env` takes `NAME=VALUE` for a variable), and a
    /// relative path means whatever the working directory makes of it.
    static func problem(withName program: String) -> String? {
        if program.hasPrefix("-") { return "a program name does not start with \"-\"; got \(program.quoted)" }
        if program.contains("=") { return "a program name has no \"=\" in it; got \(program.quoted)" }
        if program.contains("/"), !program.hasPrefix("/") { return "a program path must be absolute; got \(program.quoted)" }
        return nil
    }
}
