import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird

extension HTTPField.Name {
    static let capstanRevision = Self("X-Capstan-Revision")!
    static let capstanVersion = Self("X-Capstan-Version")!
    static let capstanFormat = Self("X-Capstan-Format")!
    static let capstanSecret = Self("X-Capstan-Secret")!
    static let capstanIndex = Self("X-Capstan-Index")!
    static let capstanAuthor = Self("X-Capstan-Author")!
    static let lastEventID = Self("Last-Event-ID")!
    /// Who an API reader is, for rollouts: `NAME; k=v,k2=v2`.
    static let capstanClient = Self("X-Capstan-Client")!
    /// The rollout whose candidate a read answered.
    static let capstanRollout = Self("X-Capstan-Rollout")!
}

enum HTTPHelpers {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        // Keys and paths read as written: `prod/app.yaml`, not `prod\/app.yaml`.
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// A Server-Sent Events `error` event holding `problem`: the last a stream sends.
    static func errorEvent(_ problem: Problem) throws -> ByteBuffer {
        let data = String(decoding: try encoder.encode(problem), as: UTF8.self)
        return ByteBuffer(string: "event: error\ndata: \(data)\n\n")
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
        var fields: HTTPFields = [.contentType: "application/json"]
        fields.append(contentsOf: headers)
        return Response(
            status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(data: try encoder.encode(value))))
    }

    /// A config version as JSON, through the hand-written encoder.
    static func json(_ info: ConfigVersionInfo, headers: HTTPFields = [:]) -> Response {
        var fields: HTTPFields = [.contentType: "application/json"]
        fields.append(contentsOf: headers)
        return Response(status: .ok, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: info.encodedJSON())))
    }

    /// Decodes a JSON request body, refusing what the strict parser refuses first: above all a
    /// repeated key (`{"role":"reader","role":"admin"}`), which a decoder would take silently,
    /// one way or the other.
    static func decode<T: Decodable>(_ type: T.Type, from body: ByteBuffer, decoder: JSONDecoder = JSONDecoder()) throws -> T {
        let data = Data(buffer: body)
        do {
            _ = try ConfigFormat.json.parse(String(decoding: data, as: UTF8.self))
        } catch {
            throw CapstanError(.invalidArgument, "the request body is not valid JSON: \(error.message)", line: error.line, column: error.column)
        }
        return try decoder.decode(type, from: data)
    }

    static func etag(_ revision: Int64) -> String { "\"\(revision)\"" }

    /// Parses an `If-Match` / `If-None-Match` value holding one revision (`"42"`, `W/"42"` or `42`).
    static func revision(fromETag value: String, header: String) throws -> Int64 {
        var text = value.trimmingCharacters(in: .whitespaces)
        if text.hasPrefix("W/") { text.removeFirst(2) }
        text = text.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        guard let revision = Int64(text), revision >= 0 else {
            throw CapstanError(.invalidArgument, "\(header) must be a revision like \"42\", got \(value)")
        }
        return revision
    }

    static func int64(_ request: Request, _ name: String) throws -> Int64? {
        guard let raw = request.uri.queryParameters[name[...]] else { return nil }
        guard let value = Int64(raw), value >= 0 else {
            throw CapstanError(.invalidArgument, "query parameter \(name) must be a non-negative integer, got \"\(raw)\"")
        }
        return value
    }

    static func string(_ request: Request, _ name: String) -> String? {
        // Hummingbird has already percent-decoded query values.
        request.uri.queryParameters[name[...]].map { String($0) }
    }

    static func duration(_ request: Request, _ name: String) throws -> Duration? {
        guard let raw = string(request, name) else { return nil }
        return try DurationParser.parse(raw)
    }

    /// The config key after `prefix` in the raw path: taken from the path itself so that empty
    /// segments and dot segments reach the key validator instead of being normalized away.
    static func key(_ request: Request, after prefix: String) throws -> ConfigKey {
        let path = request.uri.path
        let raw = path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : path
        // A byte search: Foundation's `contains` on strings cost a get more than the rest of this.
        return try ConfigKey(raw.utf8.contains(UInt8(ascii: "%")) ? raw.removingPercentEncoding ?? raw : raw)
    }
}
