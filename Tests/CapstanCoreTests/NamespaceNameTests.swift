import Testing

@testable import CapstanCore

@Suite struct NamespaceNameTests {
    @Test(arguments: ["prod", "a", "0", "order-service", "a1-b2", String(repeating: "x", count: 63)])
    func acceptsValidNames(_ name: String) throws {
        try NamespaceName.validate(name)
    }

    @Test func namesTheInvalidCharacterAndItsPosition() {
        let error = #expect(throws: CapstanError.self) { try NamespaceName.validate("Prod") }
        #expect(error?.code == .invalidNamespace)
        #expect(error?.message == #"namespace "Prod" has invalid character "P" at position 1: use a-z, 0-9 and "-""#)

        let underscore = #expect(throws: CapstanError.self) { try NamespaceName.validate("my_ns") }
        #expect(underscore?.message == #"namespace "my_ns" has invalid character "_" at position 3: use a-z, 0-9 and "-""#)
    }

    @Test(arguments: ["", "-prod", "prod-", "a/b", "é", String(repeating: "x", count: 64)])
    func rejectsInvalidNames(_ name: String) {
        let error = #expect(throws: CapstanError.self) { try NamespaceName.validate(name) }
        #expect(error?.code == .invalidNamespace)
    }

    @Test func explainsEachRule() {
        func message(_ name: String) -> String? {
            do {
                try NamespaceName.validate(name)
                return nil
            } catch {
                return error.message
            }
        }
        #expect(message("") == #"namespace is empty: use 1-63 characters of a-z, 0-9 and "-""#)
        #expect(message("-a") == #"namespace "-a" must start with a letter or digit"#)
        #expect(message("a-") == #"namespace "a-" must end with a letter or digit"#)
        #expect(message(String(repeating: "x", count: 64))?.hasSuffix("is 64 characters long: the limit is 63") == true)
        #expect(message("a\tb") == #"namespace "a\tb" has invalid character "\t" at position 2: use a-z, 0-9 and "-""#)
    }
}
