import TOMLKit

/// Turns TOML into a `ConfigValue` through TOMLKit. Dates and times become RFC 3339 strings.
enum TOMLParser {
    static func parse(_ content: String) throws(CapstanError) -> ConfigValue {
        // TOMLKit hands the text to C, which would stop silently at a NUL.
        if let nul = content.utf8.firstIndex(of: 0) {
            let offset = content.utf8.distance(from: content.utf8.startIndex, to: nul)
            throw .invalidContent(
                "invalid TOML: NUL character (U+0000)", at: SourcePosition(utf8Offset: offset, in: content.utf8))
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: content)
        } catch let error as TOMLParseError {
            throw CapstanError(
                .invalidContent, "invalid TOML: \(error.description)",
                line: error.source.begin.line, column: error.source.begin.column)
        } catch {
            throw CapstanError(.invalidContent, "invalid TOML: \(error)")
        }
        return object(of: table)
    }

    private static func object(of table: TOMLTable) -> ConfigValue {
        var object: [String: ConfigValue] = [:]
        for (key, value) in table {
            object[key] = self.value(of: value)
        }
        return .object(object)
    }

    private static func value(of value: any TOMLValueConvertible) -> ConfigValue {
        switch value.type {
        case .table:
            return value.table.map(object(of:)) ?? .null
        case .array:
            return .array(value.array.map { $0.map(self.value(of:)) } ?? [])
        case .string:
            return value.string.map(ConfigValue.string) ?? .null
        case .int:
            return value.int.map { .int(Int64($0)) } ?? .null
        case .double:
            return value.double.map(ConfigValue.double) ?? .null
        case .bool:
            return value.bool.map(ConfigValue.bool) ?? .null
        case .date:
            return value.date.map { .string(format($0)) } ?? .null
        case .time:
            return value.time.map { .string(format($0)) } ?? .null
        case .dateTime:
            return value.dateTime.map { .string(format($0)) } ?? .null
        }
    }

    private static func format(_ date: TOMLDate) -> String {
        "\(pad(date.year, 4))-\(pad(date.month, 2))-\(pad(date.day, 2))"
    }

    private static func format(_ time: TOMLTime) -> String {
        var text = "\(pad(time.hour, 2)):\(pad(time.minute, 2)):\(pad(time.second, 2))"
        if time.nanoSecond > 0 {
            var fraction = pad(time.nanoSecond, 9)
            while fraction.hasSuffix("0") {
                fraction.removeLast()
            }
            text += "." + fraction
        }
        return text
    }

    private static func format(_ dateTime: TOMLDateTime) -> String {
        var text = format(dateTime.date) + "T" + format(dateTime.time)
        if let offset = dateTime.offset?.offset {
            if offset == 0 {
                text += "Z"
            } else {
                let magnitude = abs(offset)
                text += (offset < 0 ? "-" : "+") + "\(pad(magnitude / 60, 2)):\(pad(magnitude % 60, 2))"
            }
        }
        return text
    }

    private static func pad(_ number: Int, _ width: Int) -> String {
        let digits = String(number)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
