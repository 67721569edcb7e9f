import CapstanCore
import Foundation
import Testing

@Suite("Cron expressions")
struct CronExpressionTests {
    /// The instant written as "yyyy-MM-dd HH:mm" or "yyyy-MM-dd HH:mm:ss" in GMT.
    func utc(_ text: String) throws -> Date {
        let numbers = text.split { !$0.isNumber }.compactMap { Int($0) }
        try #require(numbers.count == 5 || numbers.count == 6)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        let components = DateComponents(
            year: numbers[0], month: numbers[1], day: numbers[2], hour: numbers[3], minute: numbers[4],
            second: numbers.count == 6 ? numbers[5] : 0)
        return try #require(calendar.date(from: components))
    }

    /// `date` on the clocks of `zone` as "yyyy-MM-dd HH:mm", followed by the offset in force
    /// (" -04:00") outside GMT so that a repeated hour shows which pass it is.
    func stamp(_ date: Date, in zone: TimeZone = .gmt) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        var text = String(
            format: "%04d-%02d-%02d %02d:%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0, parts.hour ?? 0,
            parts.minute ?? 0)
        if parts.second != 0 { text += String(format: ":%02d", parts.second ?? 0) }
        if zone != .gmt {
            let offset = zone.secondsFromGMT(for: date)
            text += (offset < 0 ? " -" : " +") + String(format: "%02d:%02d", abs(offset) / 3600, abs(offset) % 3600 / 60)
        }
        return text
    }

    /// The first `count` fire times after `start` (GMT), each found from the one before.
    func fires(_ text: String, after start: String, count: Int = 1, in zone: TimeZone = .gmt) throws -> [String] {
        let cron = try CronExpression(text)
        var cursor = try utc(start)
        var times: [String] = []
        for _ in 0..<count {
            guard let next = cron.next(after: cursor, in: zone) else {
                times.append("never")
                break
            }
            times.append(stamp(next, in: zone))
            cursor = next
        }
        return times
    }

    @Test(arguments: [
        ("5 * * * *", "2026-01-01 00:00", ["2026-01-01 00:05", "2026-01-01 01:05"]),
        ("* * * * *", "2026-01-01 10:07:30", ["2026-01-01 10:08", "2026-01-01 10:09"]),
        ("*/15 * * * *", "2026-01-01 10:07", ["2026-01-01 10:15", "2026-01-01 10:30", "2026-01-01 10:45", "2026-01-01 11:00"]),
        (
            "5,10-12,*/20 * * * *", "2026-01-01 00:00",
            [
                "2026-01-01 00:05", "2026-01-01 00:10", "2026-01-01 00:11", "2026-01-01 00:12", "2026-01-01 00:20",
                "2026-01-01 00:40", "2026-01-01 01:00",
            ]
        ),
        ("0 9-17/4 * * *", "2026-01-01 00:00", ["2026-01-01 09:00", "2026-01-01 13:00", "2026-01-01 17:00", "2026-01-02 09:00"]),
        ("0 20/2 * * *", "2026-01-01 00:00", ["2026-01-01 20:00", "2026-01-01 22:00", "2026-01-02 20:00"]),
        ("0 0 1-31/10 1 *", "2026-01-01 00:00", ["2026-01-11 00:00", "2026-01-21 00:00", "2026-01-31 00:00", "2027-01-01 00:00"]),
        ("0 0 1 */3 *", "2026-01-01 00:00", ["2026-04-01 00:00", "2026-07-01 00:00", "2026-10-01 00:00", "2027-01-01 00:00"]),
        ("30 4 * * 1-5", "2026-01-03 00:00", ["2026-01-05 04:30", "2026-01-06 04:30"]),
        ("0 0 * * 1-7/2", "2026-01-01 00:00", ["2026-01-02 00:00", "2026-01-04 00:00", "2026-01-05 00:00", "2026-01-07 00:00"]),
        ("0 0 * * 1,3", "2026-01-01 00:00", ["2026-01-05 00:00", "2026-01-07 00:00", "2026-01-12 00:00"]),
    ])
    func everyFieldSyntax(expression: String, start: String, expected: [String]) throws {
        #expect(try fires(expression, after: start, count: expected.count) == expected)
    }

    @Test func monthAndWeekdayNamesIgnoreCase() throws {
        #expect(try fires("0 0 1 jan,JUL *", after: "2026-01-01 00:00", count: 2) == ["2026-07-01 00:00", "2027-01-01 00:00"])
        #expect(try fires("0 0 1 Mar-may/2 *", after: "2026-01-01 00:00", count: 2) == ["2026-03-01 00:00", "2026-05-01 00:00"])
        #expect(try fires("0 9 * * Mon-FRI", after: "2026-01-02 12:00", count: 2) == ["2026-01-05 09:00", "2026-01-06 09:00"])
        let weekdays = try fires("0 9 * * 1-5", after: "2026-01-01 00:00", count: 14)
        #expect(try fires("0 9 * * mon-5", after: "2026-01-01 00:00", count: 14) == weekdays)
        #expect(try fires("0 0 1 SEP/1 *", after: "2026-01-01 00:00", count: 5) == [
            "2026-09-01 00:00", "2026-10-01 00:00", "2026-11-01 00:00", "2026-12-01 00:00", "2027-09-01 00:00",
        ])
    }

    @Test func zeroAndSevenAreBothSunday() throws {
        let sundays = ["2026-01-04 00:00", "2026-01-11 00:00"]
        #expect(try fires("0 0 * * 0", after: "2026-01-01 00:00", count: 2) == sundays)
        #expect(try fires("0 0 * * 7", after: "2026-01-01 00:00", count: 2) == sundays)
        #expect(try fires("0 0 * * sun", after: "2026-01-01 00:00", count: 2) == sundays)
        #expect(try fires("0 0 * * 5-7", after: "2026-01-01 00:00", count: 4) == [
            "2026-01-02 00:00", "2026-01-03 00:00", "2026-01-04 00:00", "2026-01-09 00:00",
        ])
        #expect(try CronExpression("0 0 * * 7").matches(utc("2026-01-04 00:00")))
    }

    @Test func eitherDayFieldMatchesWhenBothAreRestricted() throws {
        // 2026-01-13 is a Tuesday; the other days are Fridays.
        #expect(try fires("0 0 13 * fri", after: "2026-01-01 00:00", count: 4) == [
            "2026-01-02 00:00", "2026-01-09 00:00", "2026-01-13 00:00", "2026-01-16 00:00",
        ])
        #expect(try fires("0 0 13 * *", after: "2026-01-01 00:00", count: 2) == ["2026-01-13 00:00", "2026-02-13 00:00"])
        #expect(try fires("0 0 * * fri", after: "2026-01-01 00:00", count: 2) == ["2026-01-02 00:00", "2026-01-09 00:00"])
    }

    @Test func aDayFieldStartingWithAStarMakesBothCount() throws {
        // The same days as 1-31/10, but starting with `*` makes a day match both fields:
        // the 1st, 11th, 21st or 31st falling on a Monday.
        #expect(try fires("0 0 */10 * mon", after: "2026-01-01 00:00", count: 2) == ["2026-05-11 00:00", "2026-06-01 00:00"])
        #expect(try fires("0 0 1-31/10 * mon", after: "2026-01-01 00:00", count: 3) == [
            "2026-01-05 00:00", "2026-01-11 00:00", "2026-01-12 00:00",
        ])
    }

    @Test(arguments: [
        ("@yearly", "2027-01-01 00:00"), ("@annually", "2027-01-01 00:00"), ("@monthly", "2026-06-01 00:00"),
        ("@weekly", "2026-05-17 00:00"), ("@daily", "2026-05-16 00:00"), ("@midnight", "2026-05-16 00:00"),
        ("@hourly", "2026-05-15 11:00"), ("@Daily", "2026-05-16 00:00"),
    ])
    func macros(macro: String, expected: String) throws {
        #expect(try fires(macro, after: "2026-05-15 10:10") == [expected])
        #expect(try CronExpression(" \(macro) ").description == macro)
    }

    @Test func descriptionIsTheNormalizedText() throws {
        #expect(try CronExpression("  */5   1-3\t* jan  mon-fri \n").description == "*/5 1-3 * jan mon-fri")
        #expect(try CronExpression("0  0 * * *") == CronExpression("0 0 * * *"))
        #expect(try CronExpression("0 0 * * *") != CronExpression("0 1 * * *"))
    }

    @Test(arguments: [
        ("* * * * *", "2026-01-01 10:59", "2026-01-01 11:00"),
        ("0 * * * *", "2026-01-31 23:00", "2026-02-01 00:00"),
        ("0 0 * * *", "2026-04-30 12:00", "2026-05-01 00:00"),
        ("0 0 1 * *", "2026-12-15 00:00", "2027-01-01 00:00"),
        ("0 0 1 1 *", "2026-12-31 23:59:59", "2027-01-01 00:00"),
        ("59 23 31 12 *", "2026-12-31 23:59", "2027-12-31 23:59"),
        ("0 0 31 * *", "2026-01-31 00:00", "2026-03-31 00:00"),
        ("0 0 30 * *", "2026-01-30 00:00", "2026-03-30 00:00"),
    ])
    func nextCrossesBoundaries(expression: String, start: String, expected: String) throws {
        #expect(try fires(expression, after: start) == [expected])
    }

    @Test func leapDayWaitsForALeapYear() throws {
        #expect(try fires("0 0 29 2 *", after: "2026-01-01 00:00", count: 3) == [
            "2028-02-29 00:00", "2032-02-29 00:00", "2036-02-29 00:00",
        ])
        #expect(try fires("0 0 29 2 *", after: "2096-03-01 00:00") == ["2104-02-29 00:00"], "2100 is not a leap year")
        #expect(try fires("0 12 28-29 2 *", after: "2027-02-28 12:00", count: 2) == ["2028-02-28 12:00", "2028-02-29 12:00"])
    }

    @Test func nextIsStrictlyAfter() throws {
        let cron = try CronExpression("*/15 * * * *")
        let tick = try utc("2026-01-01 10:15")
        #expect(cron.next(after: tick).map { stamp($0) } == "2026-01-01 10:30")
        #expect(cron.next(after: tick.addingTimeInterval(-0.001)) == tick)
        #expect(cron.next(after: tick.addingTimeInterval(0.5)).map { stamp($0) } == "2026-01-01 10:30")
    }

    @Test func anImpossibleDateNeverFires() throws {
        #expect(try CronExpression("0 0 30 2 *").next(after: utc("2026-01-01 00:00")) == nil)
        #expect(try CronExpression("0 0 31 apr,jun,sep,nov *").next(after: utc("2026-01-01 00:00")) == nil)
        #expect(try fires("0 0 31 2 mon", after: "2026-01-31 00:00") == ["2026-02-02 00:00"], "either day field suffices")
    }

    @Test func springForwardSkipsTheMissingTime() throws {
        // On 2026-03-08 New York clocks jump from 02:00 EST to 03:00 EDT.
        let newYork = try #require(TimeZone(identifier: "America/New_York"))
        #expect(try fires("30 2 * * *", after: "2026-03-07 00:00", count: 3, in: newYork) == [
            "2026-03-07 02:30 -05:00", "2026-03-09 02:30 -04:00", "2026-03-10 02:30 -04:00",
        ])
        #expect(try fires("30 1 * * *", after: "2026-03-07 00:00", count: 3, in: newYork) == [
            "2026-03-07 01:30 -05:00", "2026-03-08 01:30 -05:00", "2026-03-09 01:30 -04:00",
        ])
        #expect(try fires("*/30 * * * *", after: "2026-03-08 06:00", count: 3, in: newYork) == [
            "2026-03-08 01:30 -05:00", "2026-03-08 03:00 -04:00", "2026-03-08 03:30 -04:00",
        ])
        #expect(try CronExpression("30 2 * * *").next(after: utc("2026-03-08 06:59"), in: newYork) == utc("2026-03-09 06:30"))
    }

    @Test func fallBackFiresOnceAtTheFirstOccurrence() throws {
        // On 2026-11-01 New York clocks go back from 02:00 EDT to 01:00 EST.
        let newYork = try #require(TimeZone(identifier: "America/New_York"))
        #expect(try fires("30 1 * * *", after: "2026-10-31 12:00", count: 3, in: newYork) == [
            "2026-11-01 01:30 -04:00", "2026-11-02 01:30 -05:00", "2026-11-03 01:30 -05:00",
        ])
        #expect(try fires("30 2 * * *", after: "2026-10-31 12:00", count: 2, in: newYork) == [
            "2026-11-01 02:30 -05:00", "2026-11-02 02:30 -05:00",
        ])
        #expect(try fires("*/30 * * * *", after: "2026-11-01 05:00", count: 3, in: newYork) == [
            "2026-11-01 01:30 -04:00", "2026-11-01 02:00 -05:00", "2026-11-01 02:30 -05:00",
        ])
        let cron = try CronExpression("30 1 * * *")
        let firstPass = try utc("2026-11-01 05:30")
        let secondPass = try utc("2026-11-01 06:30")
        #expect(cron.matches(firstPass, in: newYork))
        #expect(!cron.matches(secondPass, in: newYork))
        #expect(try cron.next(after: secondPass.addingTimeInterval(-1), in: newYork) == utc("2026-11-02 06:30"))
    }

    @Test func timesAreWallClockTimesInTheGivenZone() throws {
        let kolkata = try #require(TimeZone(identifier: "Asia/Kolkata"))
        let cron = try CronExpression("0 9 * * *")
        #expect(try cron.next(after: utc("2026-01-01 00:00"), in: kolkata) == utc("2026-01-01 03:30"))
        #expect(try cron.next(after: utc("2026-01-01 00:00")) == utc("2026-01-01 09:00"))
    }

    @Test func matchesIgnoresSeconds() throws {
        let cron = try CronExpression("*/15 9 * * mon")
        #expect(try cron.matches(utc("2026-01-05 09:15:42")))
        #expect(try cron.matches(utc("2026-01-05 09:00")))
        #expect(try !cron.matches(utc("2026-01-05 09:16")))
        #expect(try !cron.matches(utc("2026-01-06 09:15")), "a Tuesday")
        #expect(try !cron.matches(utc("2026-01-05 10:15")))
    }

    @Test(arguments: [
        ("", 1, "cron expression is empty"),
        ("  \t ", 1, "cron expression is empty"),
        ("* * * *", 8, "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
        ("0 * * * * *", 11, "expected 5 fields (minute hour day-of-month month day-of-week), got 6"),
        ("61 * * * *", 1, "minute 61 is out of range 0-59"),
        ("  99999999999 * * * *", 3, "minute 99999999999 is out of range 0-59"),
        ("* 24 * * *", 3, "hour 24 is out of range 0-23"),
        ("* * 0 * *", 5, "day-of-month 0 is out of range 1-31"),
        ("* * 1-32 * *", 7, "day-of-month 32 is out of range 1-31"),
        ("* * * 13 *", 7, "month 13 is out of range 1-12"),
        ("* * * * 8", 9, "day-of-week 8 is out of range 0-7"),
        ("*/0 * * * *", 3, "minute step must be at least 1"),
        ("*/61 * * * *", 3, "minute step 61 is out of range 1-60"),
        ("5/ * * * *", 3, "expected a step after \"/\" in the minute field"),
        ("* 5-2 * * *", 3, "hour range 5-2 is backwards"),
        ("* * * * sat-sun", 9, "day-of-week range sat-sun is backwards: write 7 for Sunday at the end of a range"),
        ("* * * foo *", 7, "unknown month name \"foo\": use jan-dec"),
        ("* * * * Funday", 9, "unknown day-of-week name \"Funday\": use sun-sat"),
        ("* abc * * *", 3, "hour \"abc\" is not a number"),
        ("* * * 1x *", 7, "month \"1x\" is not a number or name"),
        ("1,,2 * * * *", 3, "empty field in the minute list"),
        ("5, * * * *", 3, "empty field in the minute list"),
        ("1- * * * *", 3, "expected a number in the minute field, found the end of the field"),
        ("* * ? * *", 5, "expected a number in the day-of-month field, found \"?\""),
        ("1-2-3 * * * *", 4, "unexpected \"-\" in the minute field"),
        ("@often", 1, "unknown macro \"@often\""),
        ("@reboot", 1, "@reboot is not supported"),
        ("@daily 5", 8, "@daily stands for all 5 fields: expected nothing after it"),
    ])
    func errorsNameTheProblemAndColumn(text: String, column: Int, message: String) {
        let error = #expect(throws: CapstanError.self) { try CronExpression(text) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.column == column)
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "no error")")
    }

    @Test func errorDescriptionNamesTheColumn() {
        let error = #expect(throws: CapstanError.self) { try CronExpression("0 0 * 13 *") }
        #expect(error?.description == "month 13 is out of range 1-12 (column 7)")
    }
}
