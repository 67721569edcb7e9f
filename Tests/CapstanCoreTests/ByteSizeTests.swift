import Testing

@testable import CapstanCore

@Suite struct ByteSizeTests {
    @Test(arguments: [
        ("1048576", 1_048_576), ("512KiB", 524_288), ("1MiB", 1_048_576), ("1MB", 1_000_000), ("2GiB", 2_147_483_648),
        ("10K", 10_000), ("10KB", 10_000), ("10kb", 10_000), ("3mib", 3_145_728), ("1 TB", 1_000_000_000_000),
        ("7B", 7), ("0", 0), (" 64 KiB ", 65_536),
    ])
    func parsesUnitsIgnoringCase(_ text: String, _ bytes: Int) throws {
        #expect(try ByteSize.parse(text) == bytes)
    }

    @Test(arguments: [
        ("", #"size is empty: use e.g. "1048576", "512KiB" or "1MB""#),
        ("-1MB", #"size "-1MB" is negative"#),
        ("MB", #"size "MB" does not start with a number"#),
        ("1.5MB", #"size "1.5MB" is not a whole number: use a smaller unit"#),
        ("10XB", #"size "10XB" has unknown unit "XB": use B, KB, KiB, MB, MiB, GB, GiB, TB or TiB"#),
        ("99999999999999999999", #"size "99999999999999999999" is too large"#),
        ("9999999TiB", #"size "9999999TiB" is too large"#),
    ])
    func rejectsMalformedSizes(_ text: String, _ message: String) {
        let error = #expect(throws: CapstanError.self) { try ByteSize.parse(text) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message == message)
    }

    @Test(arguments: [
        (1_048_576, "1MiB"), (1_000_000, "1MB"), (2_048_000, "2000KiB"), (1536, "1536B"), (0, "0B"), (1024, "1KiB"),
        (3 << 30, "3GiB"), (5_000, "5KB"),
    ])
    func formatsExactly(_ bytes: Int, _ text: String) throws {
        #expect(ByteSize.format(bytes) == text)
        #expect(try ByteSize.parse(text) == bytes)
    }

    @Test(arguments: [
        (455_254_016, "434.2MiB"), (25_276_194_816, "23.5GiB"), (512, "512B"), (0, "0B"), (1024, "1.0KiB"),
        (1_048_575, "1.0MiB"), (1536, "1.5KiB"), (3 << 40, "3.0TiB"),
    ])
    func formatsForReading(_ bytes: Int, _ text: String) {
        #expect(ByteSize.human(bytes) == text)
    }
}
