import CapstanCore
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

/// A template's destination directory is checked as opened and written through the descriptor.
@Suite("Template destinations")
struct DestinationTests {
    @Test func aDirectorySwappedForASymlinkAfterTheCheckCannotRedirectTheWrite() throws {
        let directory = try TemporaryDirectory(prefix: "capstan-dest")
        defer { directory.remove() }
        let allowed = directory.file("allowed")
        let outside = directory.file("outside")
        try FileManager.default.createDirectory(atPath: allowed + "/conf", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        let destination = try PathSafety.open(allowed + "/conf/app.conf", allowed: [allowed])
        // After the check: the directory moves away and a symlink to outside takes its place.
        try FileManager.default.moveItem(atPath: allowed + "/conf", toPath: allowed + "/moved")
        try FileManager.default.createSymbolicLink(atPath: allowed + "/conf", withDestinationPath: outside)
        try FileWriting.write(Data("x".utf8), in: destination.descriptor, name: ".tmp", mode: 0o644)
        try destination.swapIn(".tmp")
        #expect(FileManager.default.contents(atPath: allowed + "/moved/app.conf") == Data("x".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)
    }

    @Test func destinationsOutsideTheAllowedDirectoriesOrThroughSymlinksAreRefused() throws {
        let directory = try TemporaryDirectory(prefix: "capstan-dest")
        defer { directory.remove() }
        let allowed = directory.file("allowed")
        let outside = directory.file("outside")
        try FileManager.default.createDirectory(atPath: allowed, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: allowed + "/escape", withDestinationPath: outside)
        try FileManager.default.createSymbolicLink(atPath: allowed + "/link.conf", withDestinationPath: outside + "/x")
        let cases: [(String, String)] = [
            (outside + "/a.conf", "outside the agent's --allow-path"),
            (allowed + "/escape/a.conf", "outside the agent's --allow-path"),
            (allowed + "/link.conf", "is a symbolic link"),
            (allowed + "/../outside/a.conf", "\"..\""),
            (allowed + "/missing/a.conf", "does not exist"),
            ("relative/a.conf", "not an absolute path"),
        ]
        for (path, message) in cases {
            #expect(throws: CapstanError.self, "\(path)") { try PathSafety.open(path, allowed: [allowed]) }
            do {
                _ = try PathSafety.open(path, allowed: [allowed])
            } catch {
                #expect(error.description.contains(message), "\(path): \(error.description)")
            }
        }
        #expect(throws: CapstanError.self) { try PathSafety.open(allowed + "/a.conf", allowed: []) }
    }
}
