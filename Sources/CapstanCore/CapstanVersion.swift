/// This build's version, as `capstan version` prints it and agents report it.
public enum CapstanVersion {
    public static let current = "0.1.0"
}
