extension BenchReport {
    /// The report as Markdown: machine, command, one table per measurement, targets.
    func markdown() -> String {
        var lines: [String] = []
        lines.append(
            settings.engine == .etcd ? "## Capstan on etcd vs raw etcd, \(date)" : "## Capstan (SQLite) vs etcd, \(date)")
        lines.append("")
        lines.append("- Command: `\(commandLine)`")
        lines.append("- CPU: \(machine.cpu), \(machine.cores) cores; memory \(machine.memoryGiB) GiB")
        lines.append("- Kernel: \(machine.kernel); OS: \(machine.operatingSystem)")
        lines.append("- Data filesystem (both servers): \(machine.filesystem)")
        if settings.engine == .etcd {
            lines.append("- Capstan's store: the same etcd, under the prefix /capstan-bench")
        }
        lines.append("- etcd: \(etcdVersion)")
        lines.append("- Load average (1, 5, 15 min) before the run: \(loadAverageBefore); after: \(loadAverageAfter)")
        lines.append(
            "- Settings: \(Self.number(settings.durationSeconds)) s per measurement after "
                + "\(Self.number(settings.warmupSeconds)) s warm-up, \(settings.runs) runs (medians shown), "
                + "\(settings.valueSize)-byte values, \(settings.preloadedKeys) keys preloaded for gets, "
                + "\(settings.watchEvents) watch events per run; load generators: "
                + settings.generators.map(\.title).joined(separator: ", "))
        lines.append("")
        lines += ratioTable()
        for comparison in throughput {
            lines.append("")
            lines += table(for: comparison)
        }
        lines.append("")
        lines += watchTable()
        lines.append("")
        lines.append("### Targets")
        lines.append("")
        lines.append("| Target | Measured | Met |")
        lines.append("|---|---|---|")
        for goal in goals {
            lines.append("| \(goal.goal) | \(goal.measured) | \(goal.met ? "yes" : "**no**") |")
        }
        return lines.joined(separator: "\n")
    }

    private func table(for comparison: ThroughputComparison) -> [String] {
        let what = "\(comparison.operation == .put ? "Durable put" : "Get") (\(comparison.generator.title))"
        // On etcd, also what each request cost the etcd process (for Capstan: the etcd under it).
        let onEtcd = settings.engine == .etcd
        var lines = [
            "### \(what), \(comparison.clients) client\(comparison.clients == 1 ? "" : "s")",
            "",
            "| System | Median throughput | Runs | p50 | p99 | Server CPU/req | \(onEtcd ? "etcd CPU/req | " : "")Generator CPU/req | Failed |",
            "|---|---:|---|---:|---:|---:|\(onEtcd ? "---:|" : "")---:|---:|",
        ]
        for (name, figures) in [("Capstan", comparison.capstan), ("etcd", comparison.etcd)] {
            let runs = figures.runsPerSecond.map { Self.number($0.rounded()) }.joined(separator: ", ")
            lines.append(
                "| \(name) | \(Format.perSecond(figures.medianPerSecond)) | \(runs) | "
                    + "\(Format.milliseconds(figures.latency.p50)) | \(Format.milliseconds(figures.latency.p99)) | "
                    + "\(Format.microseconds(figures.serverCPUPerRequestMicroseconds)) | "
                    + (onEtcd ? "\(Format.microseconds(figures.etcdCPUPerRequestMicroseconds)) | " : "")
                    + "\(Format.microseconds(figures.generatorCPUPerRequestMicroseconds)) | \(figures.failed) |")
        }
        lines.append("| **Capstan / etcd** | **\(Format.ratio(comparison.ratio))** | | | | |\(onEtcd ? " |" : "") | | |")
        return lines
    }

    /// Capstan / etcd per measurement, one column per generator, side by side.
    private func ratioTable() -> [String] {
        let generators = settings.generators
        var lines = [
            "### Capstan / etcd, median throughput",
            "",
            "| Measurement | " + generators.map(\.title).joined(separator: " | ") + " |",
            "|---|" + generators.map { _ in "---:|" }.joined(),
        ]
        var seen: [String] = []
        for comparison in throughput {
            let what = "\(comparison.operation == .put ? "Durable put" : "Get"), \(comparison.clients) client\(comparison.clients == 1 ? "" : "s")"
            guard !seen.contains(what) else { continue }
            seen.append(what)
            let cells = generators.map { generator in
                throughput.first { $0.operation == comparison.operation && $0.clients == comparison.clients && $0.generator == generator }
                    .map { Format.ratio($0.ratio) } ?? "n/a"
            }
            lines.append("| \(what) | " + cells.joined(separator: " | ") + " |")
        }
        return lines
    }

    private func watchTable() -> [String] {
        var lines = [
            "### Watch delivery on an idle server (\(watch.runs) × \(watch.eventsPerRun) events, pooled)",
            "",
            "| System | send→event p50 | send→event p99 | ack→event p50 | ack→event p99 | max send→event |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for (name, figures) in [("Capstan", watch.capstan), ("etcd", watch.etcd)] {
            lines.append(
                "| \(name) | \(Format.milliseconds(figures.sendToEvent.p50)) | \(Format.milliseconds(figures.sendToEvent.p99)) | "
                    + "\(Format.milliseconds(figures.ackToEvent.p50)) | \(Format.milliseconds(figures.ackToEvent.p99)) | "
                    + "\(Format.milliseconds(figures.sendToEvent.max)) |")
        }
        return lines
    }

    private static func number(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}
