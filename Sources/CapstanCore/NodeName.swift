/// Node names: DNS-label-like, so they work as file names, in URLs and in selectors.
public enum NodeName {
    /// Lowercase letters, digits, `-`, `.` and `_`, starting with a letter or digit, at most 253.
    public static func validate(_ name: String) throws(CapstanError) {
        guard !name.isEmpty else { throw CapstanError(.invalidArgument, "node name is empty") }
        guard name.count <= 253 else {
            throw CapstanError(.invalidArgument, "node name is \(name.count) characters long: the limit is 253")
        }
        guard let first = name.first, first.isASCII, first.isLowercase || first.isNumber else {
            throw CapstanError(.invalidArgument, "node name \(name.quoted) must start with a lowercase letter or digit")
        }
        if let bad = name.first(where: { !($0.isASCII && ($0.isLowercase || $0.isNumber || "-._".contains($0))) }) {
            throw CapstanError(
                .invalidArgument, "node name \(name.quoted) contains \"\(bad)\": use lowercase letters, digits, \"-\", \".\" and \"_\"")
        }
    }
}
