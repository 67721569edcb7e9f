import CapstanTesting
import Foundation
import Testing

@testable import CapstanAgent

/// How the agent writes its own files and rendered ones: whole or not at all.
@Suite("Agent file writes")
struct FileWritingTests {
    @Test func aReplaceOverwritesWhatACrashLeftBehind() throws {
        let directory = try TemporaryDirectory(prefix: "capstan-write")
        defer { directory.remove() }
        let path = directory.file("state.json")
        try Data("old".utf8).write(to: URL(fileURLWithPath: path))
        // A crash between write and rename left the temporary file; a symlink there is not followed.
        let outside = directory.file("outside")
        try Data("untouched".utf8).write(to: URL(fileURLWithPath: outside))
        try FileManager.default.createSymbolicLink(atPath: path + ".tmp", withDestinationPath: outside)
        try FileWriting.replace(path, with: Data("new".utf8), mode: 0o600)
        #expect(FileManager.default.contents(atPath: path) == Data("new".utf8))
        #expect(FileManager.default.contents(atPath: outside) == Data("untouched".utf8))
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func aWriteRefusesAnExistingFileOrSymlinkAndLeavesItAsItWas() throws {
        let directory = try TemporaryDirectory(prefix: "capstan-write")
        defer { directory.remove() }
        let target = directory.file("target")
        try Data("keep".utf8).write(to: URL(fileURLWithPath: target))
        let link = directory.file("link")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        #expect(throws: AgentError.self) { try FileWriting.write(Data("x".utf8), to: link, mode: 0o644) }
        #expect(throws: AgentError.self) { try FileWriting.write(Data("x".utf8), to: target, mode: 0o644) }
        #expect(FileManager.default.contents(atPath: target) == Data("keep".utf8))
    }

    @Test func aFailedReplaceLeavesNoTemporaryFile() throws {
        let directory = try TemporaryDirectory(prefix: "capstan-write")
        defer { directory.remove() }
        // The destination is a non-empty directory: the rename fails after the write.
        let path = directory.file("busy")
        try FileManager.default.createDirectory(atPath: path + "/inside", withIntermediateDirectories: true)
        #expect(throws: AgentError.self) { try FileWriting.replace(path, with: Data("x".utf8), mode: 0o644) }
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
    }
}
