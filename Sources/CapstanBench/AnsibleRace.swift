import Foundation

/// The second part of `jobs`: N real `capstan agent` processes on this machine run `true`
/// through `capstan job run`, against Ansible running it over SSH on N aliases of this machine,
/// alternating run by run.
struct AnsibleRace: Sendable {
    var agents: Int
    var runs: Int
    /// The `capstan` binary: the agents and the CLI.
    var capstan: String
    var ansible: String
    /// The private key Ansible logs in with (its public half in the user's authorized_keys).
    var sshKey: String
    var user: String

    /// Starts the agents, waits until they are healthy, runs both systems `runs` times after one
    /// unmeasured run each, then stops the agents.
    func run(servers: BenchServers, progress: (String) -> Void) async throws -> AnsibleRaceResult {
        let directory = servers.directory + "/real"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        progress("\(agents) real agents: starting")
        var children: [ChildProcess] = []
        for index in 1...agents {
            let name = "real-\(index)"
            children.append(
                try servers.spawn(
                    name: name, executable: capstan,
                    arguments: [
                        "agent", "--server", servers.capstan.baseURL, "--join-token", ServeCommand.benchJoinToken,
                        "--data-dir", "\(directory)/\(name)", "--name", name, "--label", "bench=real", "--log-level", "warning",
                    ],
                    logPath: "\(directory)/\(name).log"))
        }
        progress("\(agents) real agents: waiting for every node to turn healthy")
        try await servers.waitUntilHealthy(selector: "bench=real", count: agents)
        let inventory = directory + "/inventory.ini"
        try inventoryText().write(toFile: inventory, atomically: true, encoding: .utf8)
        let capstanJob = TimedCommand(
            executable: capstan, arguments: ["job", "run", "-s", "bench=real", "--", "true"],
            environment: ["CAPSTAN_ADDR": servers.capstan.baseURL, "CAPSTAN_TOKEN": ServeCommand.benchRootToken],
            logPath: directory + "/capstan-job.log")
        let ansibleRun = ansibleCommand(inventory: inventory, directory: directory)
        let login = try await sshLogin(directory: directory)
        progress("\(agents) real agents: one unmeasured run of each")
        _ = try await capstanJob.run()
        _ = try await ansibleRun.run()
        var result = AnsibleRaceResult(
            agents: agents, capstanCommand: capstanJob.display,
            ansibleCommand: ansibleRun.display.replacingOccurrences(of: inventory, with: "inventory.ini"),
            sshLogin: login)
        for run in 1...runs {
            try await Task.sleep(for: .seconds(1))
            // Who goes first alternates, so a slow phase of the machine hits both.
            if run.isMultiple(of: 2) {
                result.ansible.append(try await ansibleRun.run())
                result.capstan.append(try await capstanJob.run())
            } else {
                result.capstan.append(try await capstanJob.run())
                result.ansible.append(try await ansibleRun.run())
            }
            let (capstanTime, ansibleTime) = (Self.seconds(result.capstan[run - 1]), Self.seconds(result.ansible[run - 1]))
            progress("\(agents) real agents: run \(run)/\(runs)  capstan \(capstanTime)  ansible \(ansibleTime)")
        }
        for child in children { await child.stop() }
        await closeSSHConnections(directory: directory + "/ansible/cp")
        return result
    }

    /// `ansible all -m command -a true` on every host of `inventory`, one fork per host. Its own
    /// files (its SSH control sockets among them) go to `directory`, not the user's home.
    private func ansibleCommand(inventory: String, directory: String) -> TimedCommand {
        TimedCommand(
            executable: ansible, arguments: ["all", "-i", inventory, "-f", String(agents), "-m", "command", "-a", "true"],
            environment: [
                "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_HOME": directory + "/ansible",
                "ANSIBLE_SSH_CONTROL_PATH_DIR": directory + "/ansible/cp", "ANSIBLE_LOCAL_TEMP": directory + "/ansible/tmp",
            ],
            logPath: directory + "/ansible.log")
    }

    /// Median wall time of three `ssh 127.0.0.1 true` without connection sharing, in seconds:
    /// what one login costs here, which Ansible pays per host.
    private func sshLogin(directory: String) async throws -> Double? {
        guard let ssh = TimedCommand.which("ssh") else { return nil }
        let login = TimedCommand(
            executable: ssh,
            arguments: [
                "-i", sshKey, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "ControlMaster=no", "-o", "ControlPath=none", "\(user)@127.0.0.1", "true",
            ],
            logPath: directory + "/ssh.log")
        var times: [Double] = []
        for _ in 1...3 { times.append(try await login.run().seconds) }
        return Median.of(times)
    }

    /// Ends the SSH master connections Ansible keeps open for a while after a run (ControlPersist).
    private func closeSSHConnections(directory: String) async {
        guard let ssh = TimedCommand.which("ssh"), let sockets = try? FileManager.default.contentsOfDirectory(atPath: directory)
        else { return }
        for socket in sockets {
            let close = TimedCommand(
                executable: ssh, arguments: ["-o", "ControlPath=\(directory)/\(socket)", "-O", "exit", "127.0.0.1"],
                logPath: directory + "/../ssh-exit.log")
            _ = try? await close.run()
        }
    }

    /// Every agent's name as an alias of this machine's sshd, logging in as `user` with the key.
    func inventoryText() -> String {
        var lines = ["[bench]"]
        lines += (1...agents).map { "real-\($0) ansible_host=127.0.0.1" }
        lines += [
            "", "[bench:vars]", "ansible_user=\(user)", "ansible_ssh_private_key_file=\(sshKey)",
            "ansible_python_interpreter=/usr/bin/python3",
            // Host keys are not checked (ANSIBLE_HOST_KEY_CHECKING); none is written to the user's known_hosts either.
            "ansible_ssh_extra_args='-o UserKnownHostsFile=/dev/null'",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    /// The first line of `ansible --version`, for the report.
    func ansibleVersion(directory: String) async -> String {
        let path = directory + "/ansible-version.txt"
        guard (try? await TimedCommand(executable: ansible, arguments: ["--version"], logPath: path).run()) != nil,
            let text = try? String(contentsOfFile: path, encoding: .utf8)
        else { return "unknown" }
        return text.split(separator: "\n").first.map(String.init) ?? "unknown"
    }

    /// Milliseconds under a second, else seconds.
    static func seconds(_ duration: Duration) -> String {
        seconds(duration.seconds)
    }

    static func seconds(_ value: Double) -> String {
        value < 1 ? String(format: "%.0f ms", value * 1000) : String(format: "%.2f s", value)
    }
}

/// Wall times of the two systems, run by run.
struct AnsibleRaceResult: Sendable {
    var agents: Int
    var capstanCommand: String
    var ansibleCommand: String
    /// Median wall time of `ssh 127.0.0.1 true`, in seconds.
    var sshLogin: Double?
    var capstan: [Duration] = []
    var ansible: [Duration] = []

    var capstanMedian: Double { Median.of(capstan.map(\.seconds)) }
    var ansibleMedian: Double { Median.of(ansible.map(\.seconds)) }
    /// How many times longer Ansible took (medians).
    var ratio: Double { ansibleMedian / capstanMedian }
}
