import ArgumentParser
import CapstanCore
import Foundation

/// `capstan server --config FILE`: a YAML map of server settings, named as the long flags.
///
/// ```yaml
/// listen: 0.0.0.0:8740
/// store: etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379
/// store-prefix: /team-a
/// ```
///
/// A flag given on the command line wins over the file.
struct ServerConfigFile {
    /// The keys a settings file may hold: every server setting's long flag.
    static var settings: [String] { ServerSettings.all.map(\.key) }

    private var values: [String: String] = [:]

    init() {}

    init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read config file \(path): no such file or not readable")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ValidationError("config file \(path) is not UTF-8 text")
        }
        let document: ConfigValue
        do {
            document = try ConfigFormat.yaml.parse(text)
        } catch {
            throw ValidationError("config file \(path) is not valid YAML: \(error)")
        }
        guard case .object(let entries) = document else {
            throw ValidationError("config file \(path) must be a map of settings, e.g. listen: 127.0.0.1:8740")
        }
        for (name, value) in entries.sorted(by: { $0.key < $1.key }) {
            guard Self.settings.contains(name) else {
                throw ValidationError(
                    "config file \(path): unknown setting \(name); known: \(Self.settings.joined(separator: ", "))")
            }
            switch value {
            case .string(let string): values[name] = string
            case .int(let number): values[name] = String(number)
            case .double(let number): values[name] = String(number)
            default:
                throw ValidationError("config file \(path): \(name) must be a single value, e.g. \(name): ...")
            }
        }
    }

    subscript(_ name: String) -> String? { values[name] }

    /// A number setting.
    func double(_ name: String) throws -> Double? {
        guard let text = values[name] else { return nil }
        guard let number = Double(text) else { throw ValidationError("config file: \(name) must be a number; got \(text)") }
        return number
    }

    /// A whole-number setting.
    func integer<T: FixedWidthInteger>(_ name: String, as: T.Type = T.self) throws -> T? {
        guard let text = values[name] else { return nil }
        guard let number = T(text) else { throw ValidationError("config file: \(name) must be a whole number; got \(text)") }
        return number
    }
}
