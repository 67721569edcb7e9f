import Testing

@testable import CapstanCore

@Suite struct KeyPrefixTests {
    @Test(arguments: [
        ("", nil), ("prod", "prod"), ("pro", "pro"), ("prod/", "prod"), ("prod/order-service/", "prod"),
        ("prod/order-", "prod"), ("prod/a/.", "prod"), ("prod/a/..", "prod"),
    ] as [(String, String?)])
    func acceptsPrefixes(_ string: String, _ namespace: String?) throws {
        let prefix = try KeyPrefix(string)
        #expect(prefix.rawValue == string)
        #expect(prefix.namespace == namespace)
    }

    @Test(arguments: [
        ("prod//", CapstanError.Code.invalidKey, #"prefix "prod//" has an empty segment at position 6"#),
        ("prod/../", .invalidKey, #"prefix "prod/../" has a ".." segment"#),
        ("prod/./a", .invalidKey, #"prefix "prod/./a" has a "." segment"#),
        ("prod/a b", .invalidKey, #"prefix "prod/a b" has invalid character " " at position 7: use A-Z a-z 0-9 . _ - and "/" between segments"#),
        ("/a", .invalidKey, #"prefix "/a" starts with "/": use NAMESPACE/PATH"#),
        ("Prod/", .invalidNamespace, #"prefix "Prod/": namespace "Prod" has invalid character "P" at position 1: use a-z, 0-9 and "-""#),
        ("prod-/", .invalidNamespace, #"prefix "prod-/": namespace "prod-" must end with a letter or digit"#),
        ("Pr", .invalidNamespace, #"prefix "Pr" has invalid character "P" at position 1: use a-z, 0-9 and "-""#),
        ("-p", .invalidNamespace, #"prefix "-p" must start with a letter or digit"#),
    ])
    func rejectsInvalidPrefixes(_ string: String, _ code: CapstanError.Code, _ message: String) {
        let error = #expect(throws: CapstanError.self) { try KeyPrefix(string) }
        #expect(error?.code == code)
        #expect(error?.message == message)
    }

    @Test func rejectsOverlongPrefixes() {
        let error = #expect(throws: CapstanError.self) {
            try KeyPrefix("prod/" + String(repeating: "a", count: 508))
        }
        #expect(error?.code == .invalidKey)
    }

    @Test func matchesKeysByText() throws {
        let key = try ConfigKey("prod/order-service/app.yaml")
        #expect(try KeyPrefix("").matches(key))
        #expect(try KeyPrefix("prod/").matches(key))
        #expect(try KeyPrefix("prod/order-").matches(key))
        #expect(try KeyPrefix("prod/order-service/app.yaml").matches(key))
        #expect(try !KeyPrefix("prod/order-service/app.yml").matches(key))
        #expect(try !KeyPrefix("dev/").matches(key))
        #expect(try !KeyPrefix("prod/").matches(ConfigKey("production/app.yaml")))
        // A bare name is the whole namespace, never a partial one.
        #expect(try !KeyPrefix("prod").matches(ConfigKey("production/app.yaml")))
        #expect(try KeyPrefix("prod").matches(key))
    }
}
