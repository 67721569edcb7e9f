import Foundation

/// When a scheduled job fires: the five classic cron fields `minute hour day-of-month month
/// day-of-week`, or one of the macros `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily`
/// (`@midnight`) and `@hourly`.
///
/// | Field | Values | Names |
/// |---|---|---|
/// | minute | 0-59 | |
/// | hour | 0-23 | |
/// | day of month | 1-31 | |
/// | month | 1-12 | `jan`-`dec` |
/// | day of week | 0-7, both 0 and 7 are Sunday | `sun`-`sat` |
///
/// A field is a comma list of `*`, `n`, `a-b`, `*/s`, `a-b/s` and `a/s` (from `a` to the field's
/// maximum, every `s`). Names ignore case and work in ranges (`mon-fri`).
///
/// The day fields combine as in Vixie cron, so existing crontabs keep their meaning: when both
/// are restricted (neither starts with `*`) a day matches if either field does, so
/// `0 0 1 * mon` fires on the 1st and on every Monday; when one starts with `*`, a day must
/// match both, which for a plain `*` leaves only the other field.
///
/// Times are wall-clock times in the time zone passed to `next(after:in:)`. Daylight saving
/// is handled so that every tick fires at most once:
/// - a local time that does not exist (skipped when clocks spring forward) does not fire that
///   day: `30 2 * * *` in New York has no run on the spring-forward day;
/// - a local time that occurs twice (repeated when clocks fall back) fires only at its first
///   occurrence, so `30 1 * * *` runs once that night, and `*/15 * * * *` is quiet for the
///   repeated hour rather than running its ticks twice.
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    private let fields: CronFields
    /// The text as given, trimmed, with fields separated by single spaces.
    public let description: String

    /// Parses `text`; surrounding whitespace is ignored and fields may be separated by any run
    /// of spaces or tabs.
    ///
    /// - Throws: `CapstanError` with code `invalidArgument`, a message naming the field and the
    ///   problem, and the 1-based column of the offending character in `text`.
    public init(_ text: String) throws(CapstanError) {
        let scalars = Array(text.unicodeScalars)
        let words = Self.words(in: scalars)
        guard let first = words.first else {
            throw CapstanError(
                .invalidArgument,
                "cron expression is empty: expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily",
                column: 1)
        }
        if scalars[first.lowerBound] == "@" {
            let macro = String(String.UnicodeScalarView(scalars[first]))
            guard let expansion = Self.macros[macro.lowercased()] else {
                let message =
                    macro.lowercased() == "@reboot"
                    ? "@reboot is not supported: a schedule fires by the clock, not when a process starts"
                    : "unknown macro \(macro.quoted): use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly"
                throw CapstanError(.invalidArgument, message, column: first.lowerBound + 1)
            }
            if words.count > 1 {
                throw CapstanError(
                    .invalidArgument, "\(macro) stands for all 5 fields: expected nothing after it", column: words[1].lowerBound + 1)
            }
            let expanded = Array(expansion.unicodeScalars)
            self.fields = try CronFields(scalars: expanded, words: Self.words(in: expanded))
            self.description = macro
            return
        }
        guard words.count == 5 else {
            let column = words.count < 5 ? words[words.count - 1].upperBound + 1 : words[5].lowerBound + 1
            let extra = words.count > 5 ? " (seconds and years are not supported)" : ""
            throw CapstanError(
                .invalidArgument,
                "expected 5 fields (minute hour day-of-month month day-of-week), got \(words.count)\(extra)",
                column: column)
        }
        self.fields = try CronFields(scalars: scalars, words: words)
        self.description = words.map { String(String.UnicodeScalarView(scalars[$0])) }.joined(separator: " ")
    }

    /// The first minute boundary strictly after `date` whose wall-clock time in `timeZone`
    /// matches, so a caller that passes the previous fire time never fires a tick twice.
    ///
    /// - Returns: nil when nothing matches in the next 400 years. The Gregorian calendar repeats
    ///   every 400 years, so nil means the expression can never fire (`0 0 30 2 *`). Also nil
    ///   for a `date` outside the years 1-9999.
    public func next(after date: Date, in timeZone: TimeZone = .gmt) -> Date? {
        guard var cursor = WallTime(date, in: timeZone) else { return nil }
        cursor.minute += 1
        let lastYear = cursor.year + 400
        while let wall = fields.firstMatch(atOrAfter: cursor, throughYear: lastYear) {
            // Walking wall-clock time, the minutes of a repeated hour come round again after
            // `date`; `instant > date` rejects them, since their first occurrence has passed.
            if let instant = wall.firstInstant(in: timeZone), instant > date {
                return instant
            }
            cursor = wall
            cursor.minute += 1
        }
        return nil
    }

    /// Whether the expression fires in the minute that contains `date` (seconds are ignored).
    /// In the second pass through a repeated hour it is false, as `next(after:in:)` skips it.
    public func matches(_ date: Date, in timeZone: TimeZone = .gmt) -> Bool {
        guard let wall = WallTime(date, in: timeZone), fields.matches(wall),
            let start = wall.firstInstant(in: timeZone)
        else { return false }
        return date >= start && date < start.addingTimeInterval(60)
    }

    private static let macros: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    /// The ranges of `scalars` between runs of whitespace.
    private static func words(in scalars: [Unicode.Scalar]) -> [Range<Int>] {
        var words: [Range<Int>] = []
        var start: Int?
        for (index, scalar) in scalars.enumerated() {
            let isSpace = scalar == " " || scalar == "\t" || scalar == "\n" || scalar == "\r"
            if isSpace, let wordStart = start {
                words.append(wordStart..<index)
                start = nil
            } else if !isSpace, start == nil {
                start = index
            }
        }
        if let wordStart = start { words.append(wordStart..<scalars.count) }
        return words
    }
}

/// The five fields as sets of allowed values, and the search for the next matching wall time.
private struct CronFields: Sendable, Hashable {
    var minutes: ValueSet
    var hours: ValueSet
    var daysOfMonth: ValueSet
    var months: ValueSet
    /// 0 is Sunday; a 7 in the text is stored as 0.
    var daysOfWeek: ValueSet
    /// True when neither day field starts with `*`: then a day needs to match only one of them.
    var daysMatchEither: Bool

    init(scalars: [Unicode.Scalar], words: [Range<Int>]) throws(CapstanError) {
        func parse(_ field: CronField) throws(CapstanError) -> ValueSet {
            var parser = CronFieldParser(field: field, scalars: scalars, range: words[field.rawValue])
            return try parser.parse()
        }
        minutes = try parse(.minute)
        hours = try parse(.hour)
        daysOfMonth = try parse(.dayOfMonth)
        months = try parse(.month)
        daysOfWeek = try parse(.dayOfWeek)
        let startsWithStar = { (field: CronField) in scalars[words[field.rawValue].lowerBound] == "*" }
        daysMatchEither = !startsWithStar(.dayOfMonth) && !startsWithStar(.dayOfWeek)
    }

    func matches(_ wall: WallTime) -> Bool {
        minutes.contains(wall.minute) && hours.contains(wall.hour) && months.contains(wall.month)
            && dayMatches(wall.day, weekday: CivilDate.weekday(year: wall.year, month: wall.month, day: wall.day))
    }

    func dayMatches(_ day: Int, weekday: Int) -> Bool {
        let inMonth = daysOfMonth.contains(day)
        let inWeek = daysOfWeek.contains(weekday)
        return daysMatchEither ? inMonth || inWeek : inMonth && inWeek
    }

    /// The first matching wall time at or after `start`, which may hold an overflowing value
    /// such as minute 60. Each level jumps straight to its next allowed value and a miss resets
    /// the levels below, so a search costs a few steps per month rather than one per minute.
    func firstMatch(atOrAfter start: WallTime, throughYear lastYear: Int) -> WallTime? {
        var wall = start
        while wall.year <= lastYear {
            guard let month = months.first(atOrAfter: wall.month) else {
                wall = WallTime(year: wall.year + 1, month: 1, day: 1, hour: 0, minute: 0)
                continue
            }
            if month != wall.month { wall = WallTime(year: wall.year, month: month, day: 1, hour: 0, minute: 0) }
            guard let day = firstDay(year: wall.year, month: wall.month, atOrAfter: wall.day) else {
                wall = WallTime(year: wall.year, month: wall.month + 1, day: 1, hour: 0, minute: 0)
                continue
            }
            if day != wall.day { (wall.day, wall.hour, wall.minute) = (day, 0, 0) }
            guard let hour = hours.first(atOrAfter: wall.hour) else {
                (wall.day, wall.hour, wall.minute) = (wall.day + 1, 0, 0)
                continue
            }
            if hour != wall.hour { (wall.hour, wall.minute) = (hour, 0) }
            guard let minute = minutes.first(atOrAfter: wall.minute) else {
                (wall.hour, wall.minute) = (wall.hour + 1, 0)
                continue
            }
            wall.minute = minute
            return wall
        }
        return nil
    }

    private func firstDay(year: Int, month: Int, atOrAfter day: Int) -> Int? {
        let lastDay = CivilDate.daysIn(year: year, month: month)
        guard day <= lastDay else { return nil }
        var weekday = CivilDate.weekday(year: year, month: month, day: day)
        for candidate in day...lastDay {
            if dayMatches(candidate, weekday: weekday) { return candidate }
            weekday = (weekday + 1) % 7
        }
        return nil
    }
}

/// A set of values 0-63 as a bit mask: a test is one `&`, the next allowed value one count of
/// trailing zeros.
private struct ValueSet: Sendable, Hashable {
    private var bits: UInt64 = 0

    mutating func insert(_ value: Int) { bits |= 1 << UInt64(value) }

    func contains(_ value: Int) -> Bool { (0..<64).contains(value) && bits & (1 << UInt64(value)) != 0 }

    /// The smallest member not below `value`, or nil.
    func first(atOrAfter value: Int) -> Int? {
        guard value < 64 else { return nil }
        let candidates = bits & (UInt64.max << UInt64(max(value, 0)))
        return candidates == 0 ? nil : candidates.trailingZeroBitCount
    }
}

private enum CronField: Int {
    case minute, hour, dayOfMonth, month, dayOfWeek

    var name: String {
        switch self {
        case .minute: "minute"
        case .hour: "hour"
        case .dayOfMonth: "day-of-month"
        case .month: "month"
        case .dayOfWeek: "day-of-week"
        }
    }

    /// The values the text may use; day of week allows 7 for Sunday so `mon-7` reads naturally.
    var bounds: ClosedRange<Int> {
        switch self {
        case .minute: 0...59
        case .hour: 0...23
        case .dayOfMonth: 1...31
        case .month: 1...12
        case .dayOfWeek: 0...7
        }
    }

    /// Names for the values from `bounds.lowerBound` on, lowercase.
    var names: [String] {
        switch self {
        case .month: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        case .dayOfWeek: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        default: []
        }
    }

    /// Steps beyond the number of distinct values could only ever select the first one, which is
    /// never what `*/90` in the minute field meant.
    var largestStep: Int { self == .dayOfWeek ? 7 : bounds.count }
}

/// Reads one field, reporting problems at 1-based columns of the whole expression.
private struct CronFieldParser {
    let field: CronField
    let scalars: [Unicode.Scalar]
    var index: Int
    let end: Int

    init(field: CronField, scalars: [Unicode.Scalar], range: Range<Int>) {
        self.field = field
        self.scalars = scalars
        self.index = range.lowerBound
        self.end = range.upperBound
    }

    /// The field's comma list as a set, with day-of-week 7 folded onto 0.
    mutating func parse() throws(CapstanError) -> ValueSet {
        var values = ValueSet()
        while true {
            guard index < end, scalars[index] != "," else {
                throw error("empty field in the \(field.name) list: remove the extra comma")
            }
            for value in try item() {
                values.insert(field == .dayOfWeek && value == 7 ? 0 : value)
            }
            if index == end { return values }
            index += 1  // `item` stops only at the end or at a comma
        }
    }

    /// One of `*`, `n`, `a-b`, each optionally followed by `/step`.
    private mutating func item() throws(CapstanError) -> StrideThrough<Int> {
        let start = index
        var range: ClosedRange<Int>
        var isSingle = false
        if scalars[index] == "*" {
            index += 1
            range = field.bounds
        } else {
            let low = try value()
            range = low...low
            isSingle = true
            if peek == "-" {
                index += 1
                let high = try value()
                guard low <= high else {
                    let hint = field == .dayOfWeek && high == 0 ? ": write 7 for Sunday at the end of a range" : ""
                    throw error("\(field.name) range \(text(start..<index)) is backwards\(hint)", at: start)
                }
                range = low...high
                isSingle = false
            }
        }
        var step = 1
        if peek == "/" {
            index += 1
            let stepStart = index
            while index < end, Self.isDigit(scalars[index]) { index += 1 }
            guard index > stepStart else { throw error("expected a step after \"/\" in the \(field.name) field") }
            let digits = text(stepStart..<index)
            guard let parsed = Int(digits), parsed <= field.largestStep else {
                throw error("\(field.name) step \(digits) is out of range 1-\(field.largestStep)", at: stepStart)
            }
            guard parsed >= 1 else { throw error("\(field.name) step must be at least 1", at: stepStart) }
            step = parsed
            if isSingle { range = range.lowerBound...field.bounds.upperBound }
        }
        if let next = peek, next != "," {
            throw error("unexpected \(String(next).quoted) in the \(field.name) field")
        }
        return stride(from: range.lowerBound, through: range.upperBound, by: step)
    }

    /// A number, or a name where the field has names.
    private mutating func value() throws(CapstanError) -> Int {
        let start = index
        while index < end, Self.isDigit(scalars[index]) || Self.isLetter(scalars[index]) { index += 1 }
        let word = text(start..<index)
        let expected = field.names.isEmpty ? "a number" : "a number or name"
        guard !word.isEmpty else {
            let found = index < end ? String(scalars[index]).quoted : "the end of the field"
            throw error("expected \(expected) in the \(field.name) field, found \(found)")
        }
        if word.unicodeScalars.allSatisfy(Self.isDigit) {
            guard let number = Int(word), field.bounds.contains(number) else {
                throw error(
                    "\(field.name) \(word) is out of range \(field.bounds.lowerBound)-\(field.bounds.upperBound)", at: start)
            }
            return number
        }
        if !field.names.isEmpty, word.unicodeScalars.allSatisfy(Self.isLetter) {
            guard let position = field.names.firstIndex(of: word.lowercased()) else {
                let names = field.names
                throw error("unknown \(field.name) name \(word.quoted): use \(names[0])-\(names[names.count - 1])", at: start)
            }
            return field.bounds.lowerBound + position
        }
        throw error("\(field.name) \(word.quoted) is not \(expected)", at: start)
    }

    private static func isDigit(_ scalar: Unicode.Scalar) -> Bool { ("0"..."9").contains(scalar) }

    private static func isLetter(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
    }

    private var peek: Unicode.Scalar? { index < end ? scalars[index] : nil }

    private func text(_ range: Range<Int>) -> String { String(String.UnicodeScalarView(scalars[range])) }

    private func error(_ message: String, at position: Int? = nil) -> CapstanError {
        CapstanError(.invalidArgument, message, column: (position ?? index) + 1)
    }
}

/// A local date and time to the minute. Fields may briefly overflow (minute 60, day 32) while
/// the search carries into the next unit.
private struct WallTime {
    var year: Int
    var month: Int
    var day: Int
    var hour: Int
    var minute: Int

    init(year: Int, month: Int, day: Int, hour: Int, minute: Int) {
        (self.year, self.month, self.day, self.hour, self.minute) = (year, month, day, hour, minute)
    }

    /// The wall-clock minute containing `date` in `timeZone`, or nil outside the years 1-9999:
    /// before that `Calendar` counts years backwards, and far beyond it clamps dates, which
    /// would leave `next(after:in:)` walking 400 years of ticks that all lie before `date`.
    init?(_ date: Date, in timeZone: TimeZone) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let parts = calendar.dateComponents([.era, .year, .month, .day, .hour, .minute], from: date)
        guard parts.era == 1, let year = parts.year, (1...9999).contains(year), let month = parts.month,
            let day = parts.day, let hour = parts.hour, let minute = parts.minute
        else { return nil }
        self.init(year: year, month: month, day: day, hour: hour, minute: minute)
    }

    /// The earliest instant at which clocks in `timeZone` show this time, or nil when they skip
    /// it. Resolved here rather than by `Calendar.date(from:)`, which moves skipped times
    /// forward instead of reporting them.
    func firstInstant(in timeZone: TimeZone) -> Date? {
        let local = (CivilDate.daysSinceEpoch(year: year, month: month, day: day) * 24 + hour) * 3600 + minute * 60
        // An instant showing this time lies within a day of `local`, and zones change offset at
        // most once in two days, so the offsets a day either side cover every candidate.
        var earliest: Date?
        for probe in [local - 86_400, local, local + 86_400] {
            let offset = timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(probe)))
            let instant = Date(timeIntervalSince1970: TimeInterval(local - offset))
            if timeZone.secondsFromGMT(for: instant) == offset, earliest.map({ instant < $0 }) ?? true {
                earliest = instant
            }
        }
        return earliest
    }
}

/// Proleptic Gregorian arithmetic on plain integers: the search asks for month lengths and
/// weekdays thousands of times, far more cheaply than through `Calendar`.
private enum CivilDate {
    static func isLeap(_ year: Int) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    static func daysIn(year: Int, month: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    private static let daysBeforeMonthInCommonYear = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334]

    /// Days from 1970-01-01, for years from 1 on.
    static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let yearsBefore = year - 1
        let daysBeforeYear = yearsBefore * 365 + yearsBefore / 4 - yearsBefore / 100 + yearsBefore / 400
        let daysBeforeMonth = daysBeforeMonthInCommonYear[month - 1]
        let leapDay = month > 2 && isLeap(year) ? 1 : 0
        // 719162 days separate 0001-01-01 from 1970-01-01.
        return daysBeforeYear + daysBeforeMonth + leapDay + day - 1 - 719_162
    }

    /// 0 for Sunday through 6 for Saturday.
    static func weekday(year: Int, month: Int, day: Int) -> Int {
        // 1970-01-01 was a Thursday.
        let days = daysSinceEpoch(year: year, month: month, day: day) + 4
        return (days % 7 + 7) % 7
    }
}
