import ArgumentParser
import CapstanCore
import Foundation

struct ScheduleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule",
        abstract: "Start jobs on a cron schedule.",
        discussion: """
            Five fields (minute hour day-of-month month day-of-week) with ranges (1-5), steps (*/15), lists \
            (1,15) and names (mon-fri, jan), or @hourly, @daily, @weekly, @monthly, @yearly. When both day \
            fields are restricted, either may match. Each tick starts one job, however many server replicas \
            run and across restarts. Ticks missed while no server ran are skipped, or with --missed run-once \
            the latest of them starts one job.
            """,
        subcommands: [Put.self, List.self, Remove.self]
    )

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or replace a schedule.",
            discussion: "Example: capstan schedule put nightly-backup --cron '30 2 * * *' -s role=db -- /opt/backup.sh")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Schedule name: lowercase letters, digits, -, . and _.") var name: String
        @Option(help: "The cron expression, e.g. '*/5 * * * *'.") var cron: String
        @Option(help: "Time zone the cron fields are read in (IANA name).") var timeZone: String = "UTC"
        @Option(help: "Ticks missed while no server ran: skip, or run-once (one job for the latest).") var missed: String = "skip"
        @OptionGroup var options: JobOptions
        @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.") var command: [String] = []

        func spec() throws -> ScheduleSpec {
            guard let policy = ScheduleSpec.MissedTicks(rawValue: missed) else {
                throw ValidationError("--missed must be skip or run-once; got \(missed)")
            }
            do { _ = try CronExpression(cron) } catch { throw ValidationError("--cron: \(error.description)") }
            guard TimeZone(identifier: timeZone) != nil else {
                throw ValidationError("--time-zone \(timeZone.quoted) is not a time zone name such as UTC or Europe/Paris")
            }
            return ScheduleSpec(cron: cron, timeZone: timeZone, missed: policy, job: try options.spec(command: command))
        }

        func validate() throws {
            _ = try spec()
        }

        func run() async throws {
            let info = try await global.client().putSchedule(name, try spec())
            try Output.print(info, as: global.output) {
                "saved schedule \(info.name)" + (info.nextTick.map { ", next tick \(Output.time($0))" } ?? ", which never fires") + "\n"
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List schedules with their next tick and last job.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let list = try await global.client().schedules()
            try Output.print(list.items, as: global.output) {
                Output.table(
                    ["NAME", "CRON", "NEXT", "LAST TICK", "LAST JOB", "COMMAND"],
                    list.items.map {
                        [
                            $0.name, $0.spec.cron + ($0.spec.timeZone == "UTC" ? "" : " (\($0.spec.timeZone))"),
                            $0.nextTick.map(Output.time) ?? "never", $0.lastTick.map(Output.time) ?? "-",
                            $0.lastJob ?? ($0.lastError.map { "none: \($0)" } ?? "-"), $0.spec.job.commandLine,
                        ]
                    })
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a schedule; jobs it started stay.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Schedule name.") var name: String

        func run() async throws {
            try await global.client().removeSchedule(name)
            if global.output == .table { print("removed schedule \(name)") }
        }
    }
}
