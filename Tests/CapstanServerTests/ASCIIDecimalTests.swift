import Testing

@testable import CapstanServer

@Suite("Decimal digits in bytes")
struct ASCIIDecimalTests {
    @Test(arguments: [0, 7, 10, 99, 1_000_000, 1_795_000_000_123, Int64.max])
    func writesWhatStringWrites(_ value: Int64) {
        #expect(ASCIIDecimal.text(value) == String(value))
        let padded = String(repeating: "0", count: max(0, 20 - String(value).count)) + String(value)
        #expect(ASCIIDecimal.text(value, width: 20) == padded)
    }

    @Test func aNegativeValueKeepsItsSign() {
        #expect(ASCIIDecimal.text(-42) == "-42")
        #expect(ASCIIDecimal.text(Int64.min) == String(Int64.min))
    }

    @Test func appendsAfterWhatIsThere() {
        var bytes = Array("history/prod/a@".utf8)
        ASCIIDecimal.append(12, width: 20, to: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == "history/prod/a@00000000000000000012")
    }
}
