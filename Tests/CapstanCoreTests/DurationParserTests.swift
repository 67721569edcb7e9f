import Testing

@testable import CapstanCore

@Suite struct DurationParserTests {
    @Test(arguments: [
        ("250ms", Duration.milliseconds(250)), ("30s", .seconds(30)), ("1m30s", .seconds(90)), ("2h", .seconds(7200)),
        ("1.5s", .milliseconds(1500)), ("45", .seconds(45)), ("0", .zero), ("0s", .zero), (" 10s\n", .seconds(10)),
        ("1h2m3s4ms5us6ns", .seconds(3723) + .nanoseconds(4_005_006)), ("1.25h", .seconds(4500)), ("500µs", .microseconds(500)),
        (".5s", .milliseconds(500)),
    ])
    func parsesGoStyleDurations(_ text: String, _ expected: Duration) throws {
        #expect(try DurationParser.parse(text) == expected)
    }

    @Test(arguments: [
        ("", "duration is empty: use e.g. \"30s\", \"1m30s\" or \"250ms\""),
        ("  ", "duration is empty: use e.g. \"30s\", \"1m30s\" or \"250ms\""),
        ("-5s", #"duration "-5s" is negative"#),
        ("5x", #"duration "5x" has unknown unit "x": use ns, us, ms, s, m or h"#),
        ("5 s", #"duration "5 s" has unknown unit " s": use ns, us, ms, s, m or h"#),
        ("1m30", #"duration "1m30" is missing a unit after "30": use ns, us, ms, s, m or h"#),
        ("1.5", #"duration "1.5" is missing a unit after "1": use ns, us, ms, s, m or h"#),
        ("s", #"duration "s" has "s" where a number should be"#),
        ("99999999999999999999s", #"duration "99999999999999999999s" is too large"#),
        ("9999999999999h", #"duration "9999999999999h" is too large"#),
        ("99999999999", #"duration "99999999999" is too large"#),
    ])
    func rejectsMalformedDurations(_ text: String, _ message: String) {
        let error = #expect(throws: CapstanError.self) { try DurationParser.parse(text) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message == message)
    }

    @Test(arguments: [
        (Duration.seconds(30), "30s"), (.seconds(90), "1m30s"), (.milliseconds(250), "250ms"), (.zero, "0s"),
        (.seconds(7200), "2h"), (.seconds(3601), "1h1s"), (.milliseconds(1500), "1.5s"), (.microseconds(7), "7us"),
        (.nanoseconds(42), "42ns"), (.seconds(-30), "-30s"), (.seconds(3660) + .milliseconds(5), "1h1m0.005s"),
    ])
    func formatsLargestUnitsFirst(_ duration: Duration, _ text: String) throws {
        #expect(DurationParser.format(duration) == text)
        if duration >= .zero {
            #expect(try DurationParser.parse(text) == duration)
        }
    }
}
