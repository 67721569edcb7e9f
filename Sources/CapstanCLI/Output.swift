import CapstanCore
import Foundation
import Yams

/// Renders results as a table, JSON or YAML.
enum Output {
    static func json(_ value: some Encodable, pretty: Bool = true) throws -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static func yaml(_ value: some Encodable) throws -> String {
        // Through JSON first so dates and keys look the same as in the JSON output.
        let object = try JSONSerialization.jsonObject(with: Data(try json(value, pretty: false).utf8), options: [.fragmentsAllowed])
        return try Yams.dump(object: object, sortKeys: true)
    }

    /// Prints `value` as JSON or YAML, or calls `table` for the table format.
    static func print(_ value: some Encodable, as format: OutputFormat, table: () -> String) throws {
        switch format {
        case .json: Swift.print(try json(value))
        case .yaml: Swift.print(try yaml(value), terminator: "")
        case .table: Swift.print(table(), terminator: "")
        }
    }

    static func table(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n") + "\n"
    }

    static func time(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}

/// Writes one line to standard output at once (unbuffered), for streams a pipe reads live.
func printLine(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Writes one line to standard error.
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
