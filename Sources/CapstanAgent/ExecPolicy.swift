import CapstanCore
import Foundation

/// Which commands an agent runs: all (the default), none (`--no-exec`), or only those whose
/// program is listed (`--allow-command`, matched on argv[0] as given or its file name). It covers
/// every command the agent runs: jobs, templates' check and reload commands, and command checks.
public enum ExecPolicy: Sendable, Hashable {
    case all
    case none
    case only([String])

    /// Why running `arguments` (through `/bin/sh -c` when `shell`) is refused, or nil when it may run.
    func refusal(of arguments: [String], shell: Bool) -> String? {
        switch self {
        case .all:
            return nil
        case .none:
            return "this agent does not run commands (it was started with --no-exec)"
        case .only(let allowed):
            // A shell runs whatever its command line says: no list can vouch for it.
            if shell { return "this agent runs only the programs --allow-command lists, never through a shell" }
            guard let program = arguments.first else { return "empty command" }
            let name = (program as NSString).lastPathComponent
            return allowed.contains(program) || allowed.contains(name)
                ? nil : "this agent does not allow \(program.quoted) (allowed: \(allowed.joined(separator: ", ")))"
        }
    }

    /// The same for a command line as templates and checks give it: split into argv as
    /// `CommandRunner` splits it, unless it runs through a shell.
    func refusal(ofCommandLine line: String, shell: Bool) -> String? {
        guard case .only = self, !shell else { return refusal(of: [], shell: shell) }
        do {
            return refusal(of: try CommandRunner.split(line), shell: false)
        } catch {
            return error.message
        }
    }

    func refusal(of job: AgentMessage.JobStart) -> String? {
        refusal(of: job.command, shell: job.shell)
    }
}
