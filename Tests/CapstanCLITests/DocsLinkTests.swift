import Foundation
import Testing

/// The README and every page under docs/ link only to files that exist, and the README's map
/// names every page: moving or renaming a page cannot leave a dead link behind.
@Suite("Docs links")
struct DocsLinkTests {
    static let root = ReadmeTourTests.readme.deletingLastPathComponent()

    static func pages() throws -> [URL] {
        let docs = root.appendingPathComponent("docs")
        let names = try FileManager.default.contentsOfDirectory(atPath: docs.path).filter { $0.hasSuffix(".md") }.sorted()
        return [ReadmeTourTests.readme] + names.map { docs.appendingPathComponent($0) }
    }

    /// Relative link targets of `text`, without their `#fragment`.
    static func relativeLinks(_ text: String) -> [String] {
        let pattern = try! NSRegularExpression(pattern: #"\]\(([^)\s]+)\)"#)
        let range = NSRange(text.startIndex..., in: text)
        return pattern.matches(in: text, range: range).compactMap { match in
            guard let target = Range(match.range(at: 1), in: text).map({ String(text[$0]) }),
                !target.contains("://"), !target.hasPrefix("#"), !target.hasPrefix("mailto:")
            else { return nil }
            return String(target.split(separator: "#", maxSplits: 1).first ?? "")
        }
    }

    @Test func everyRelativeLinkPointsAtAFile() throws {
        for page in try Self.pages() {
            let text = try String(contentsOf: page, encoding: .utf8)
            for link in Self.relativeLinks(text) {
                let target = page.deletingLastPathComponent().appendingPathComponent(link).standardizedFileURL
                #expect(FileManager.default.fileExists(atPath: target.path), "\(page.lastPathComponent) links to \(link), which is not there")
            }
        }
    }

    @Test func theReadmeMapsEveryPage() throws {
        let readme = try String(contentsOf: ReadmeTourTests.readme, encoding: .utf8)
        for page in try Self.pages().dropFirst() {
            #expect(readme.contains("(docs/\(page.lastPathComponent))"), "the README's map leaves out docs/\(page.lastPathComponent)")
        }
    }
}
