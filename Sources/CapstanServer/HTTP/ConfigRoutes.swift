import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Config keys: raw content in and out, listings, history, diff and rollback.
struct ConfigRoutes {
    typealias Context = CapstanRequestContext

    let service: ConfigService
    let metrics: ServerMetrics
    /// Candidates (`?rollout=NAME`), refusals and `--force`, and what identified readers see.
    let rollouts: RolloutService

    /// Long polls without `wait` block this long.
    static var defaultWait: Duration { .seconds(30) }

    func register(on router: GuardedRouter) {
        router.put("v1/config/{namespace}/**", access: .caller(.config, .write, .key(after: "/v1/config/"))) { request, context in try await put(request, context) }
        router.get("v1/config/{namespace}/**", access: .caller(.config, .read, .key(after: "/v1/config/"))) { request, context in try await get(request, context) }
        router.delete("v1/config/{namespace}/**", access: .caller(.config, .delete, .key(after: "/v1/config/"))) { request, context in try await delete(request, context) }
        router.get("v1/configs", access: .caller(.config, .read, .query("prefix"))) { request, context in try await list(request, context) }
        router.get("v1/history/{namespace}/**", access: .caller(.config, .read, .key(after: "/v1/history/"))) { request, _ in
            let key = try HTTPHelpers.key(request, after: "/v1/history/")
            let limit = try HTTPHelpers.int64(request, "limit").map { Int($0) }
            var history = try await service.history(key, limit: limit)
            // Candidates of rollouts take their place among the versions, by revision.
            history.items = (history.items + (try await rollouts.candidateHistory(key))).sorted { $0.revision > $1.revision }
            if let limit { history.items = Array(history.items.prefix(limit)) }
            return try HTTPHelpers.json(history)
        }
        router.get("v1/diff/{namespace}/**", access: .caller(.config, .read, .key(after: "/v1/diff/"))) { request, _ in
            let key = try HTTPHelpers.key(request, after: "/v1/diff/")
            guard let from = try HTTPHelpers.int64(request, "from") else {
                throw CapstanError(.invalidArgument, "query parameter from (the old revision) is required")
            }
            let diff = try await service.diff(key, from: from, to: try HTTPHelpers.int64(request, "to"))
            return Response(
                status: .ok, headers: [.contentType: "text/x-diff; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: diff)))
        }
        router.post("v1/rollback/{namespace}/**", access: .caller(.config, .write, .key(after: "/v1/rollback/"))) { request, context in
            let key = try HTTPHelpers.key(request, after: "/v1/rollback/")
            let info = try await service.rollback(
                key, to: try HTTPHelpers.int64(request, "to"), author: context.author(request),
                comment: HTTPHelpers.string(request, "comment") ?? "", ifRevision: try ifMatch(request))
            return HTTPHelpers.json(info, headers: [.eTag: HTTPHelpers.etag(info.revision)])
        }
    }

    private func put(_ request: Request, _ context: Context) async throws -> Response {
        let key = try HTTPHelpers.key(request, after: "/v1/config/")
        let limit = service.configuration.maxContentSize
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw tooLarge(key, size: length)
        }
        let body: ByteBuffer
        do {
            var request = request
            body = try await request.collectBody(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw tooLarge(key, size: nil)
        }
        let format = try HTTPHelpers.string(request, "format").map { try ConfigFormat(name: $0) }
        if let rollout = HTTPHelpers.string(request, "rollout") {
            if try Self.secretFlag(request) { throw CapstanError(.invalidArgument, "secrets are not rolled out gradually") }
            let info = try await rollouts.putCandidate(
                rollout, key: key, content: Data(buffer: body), format: format, comment: HTTPHelpers.string(request, "comment") ?? "",
                author: context.author(request))
            return try HTTPHelpers.json(info)
        }
        if try Self.flag(request, "force") { try await rollouts.abortHolding(key, actor: context.author(request)) }
        let info = try await service.put(
            key, content: Data(buffer: body), format: format, comment: HTTPHelpers.string(request, "comment") ?? "",
            author: context.author(request), ifRevision: try ifMatch(request), secret: try Self.secretFlag(request),
            contentSHA256: context.bodySHA256)
        return HTTPHelpers.json(info, headers: [.eTag: HTTPHelpers.etag(info.revision)])
    }

    private func tooLarge(_ key: ConfigKey, size: Int?) -> CapstanError {
        let limit = ByteSize.format(service.configuration.maxContentSize)
        let what = size.map { "is \(ByteSize.format($0))" } ?? "is larger than the limit"
        return CapstanError(.payloadTooLarge, "config \(key) \(what); the limit is \(limit)")
    }

    /// `?secret=true` (or `1`): the write is a secret.
    static func secretFlag(_ request: Request) throws -> Bool {
        try flag(request, "secret")
    }

    /// A boolean query parameter: absent or `false`/`0` is false, `true`/`1`/empty is true.
    static func flag(_ request: Request, _ name: String) throws -> Bool {
        switch HTTPHelpers.string(request, name) {
        case nil, "false", "0": return false
        case "true", "1", "": return true
        case let other?: throw CapstanError(.invalidArgument, "query parameter \(name) must be true or false; got \(other)")
        }
    }

    private func get(_ request: Request, _ context: Context) async throws -> Response {
        let key = try HTTPHelpers.key(request, after: "/v1/config/")
        let revision = try HTTPHelpers.int64(request, "revision")
        if revision == nil, let header = request.headers[.capstanClient] {
            return try await identifiedGet(request, context, key: key, client: try ClientIdentity(header: header))
        }
        if let index = try HTTPHelpers.int64(request, "index") {
            let wait = try HTTPHelpers.duration(request, "wait") ?? Self.defaultWait
            metrics.longPolls.increment()
            defer { metrics.longPolls.decrement() }
            let service = self.service
            // A token revoked (or expired) while the poll waits ends it with 401.
            try await context.whileTokenWorks { try await service.waitForChange(key, after: index, timeout: wait) }
        }
        return try await main(request, context, key: key, revision: revision)
    }

    /// The main version of `key` (current, or at `revision`).
    private func main(_ request: Request, _ context: Context, key: ConfigKey, revision: Int64?) async throws -> Response {
        let entry: ConfigService.Entry
        let index: Int64
        if let revision {
            // Read the index before the content: a change in between makes the next poll return
            // at once instead of being missed.
            index = try await service.status().revision
            do {
                entry = try await service.get(key, revision: revision)
            } catch let error as CapstanError where error.code == .configNotFound {
                return ProblemMapping.response(for: ProblemMapping.problem(for: error), headers: [.capstanIndex: String(index)])
            }
        } else {
            // One read answers the content and the revision it was served at.
            let read = try await service.current(key)
            index = read.index
            guard let found = read.entry else {
                let error = try await service.notFound(key)
                return ProblemMapping.response(for: ProblemMapping.problem(for: error), headers: [.capstanIndex: String(index)])
            }
            entry = found
        }
        let etag = HTTPHelpers.etag(entry.info.revision)
        var headers: HTTPFields = [
            .contentType: entry.info.format.mediaType,
            .eTag: etag,
            .capstanRevision: String(entry.info.revision),
            .capstanVersion: String(entry.info.version),
            .capstanFormat: entry.info.format.rawValue,
            .capstanIndex: String(max(index, entry.info.revision)),
        ]
        if revision == nil, let noneMatch = request.headers[.ifNoneMatch],
            (try? HTTPHelpers.revision(fromETag: noneMatch, header: "If-None-Match")) == entry.info.revision
        {
            headers[.contentType] = nil
            return Response(status: .notModified, headers: headers)
        }
        var content = entry.content
        if entry.info.secret == true {
            // Reading a secret's content needs more than reading the key.
            try context.authorize(.readSecret, on: .config, target: key.description)
            content = try await service.reveal(entry, key: key)
            headers[.capstanSecret] = "true"
            headers[.cacheControl] = "no-store"
        }
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(data: content)))
    }

    /// A read by a client that names itself (`X-Capstan-Client`): a rollout's candidate when the
    /// client is one of its members, else the main version as for anyone.
    private func identifiedGet(_ request: Request, _ context: Context, key: ConfigKey, client: ClientIdentity) async throws -> Response {
        if let index = try HTTPHelpers.int64(request, "index") {
            let wait = try HTTPHelpers.duration(request, "wait") ?? Self.defaultWait
            metrics.longPolls.increment()
            defer { metrics.longPolls.decrement() }
            let rollouts = self.rollouts
            try await context.whileTokenWorks { try await rollouts.waitForChange(key, for: client, after: index, timeout: wait) }
        }
        guard let view = try await rollouts.view(key, for: client) else {
            return try await main(request, context, key: key, revision: nil)
        }
        let rolloutHeader: HTTPFields = [.capstanRollout: view.rollout, .capstanIndex: String(view.index)]
        guard let entry = view.entry else {
            let error = CapstanError(.configNotFound, "config \(key) is deleted by rollout \(view.rollout), whose member this client is")
            return ProblemMapping.response(for: ProblemMapping.problem(for: error), headers: rolloutHeader)
        }
        var headers: HTTPFields = [
            .contentType: entry.info.format.mediaType,
            .eTag: HTTPHelpers.etag(entry.info.revision),
            .capstanRevision: String(entry.info.revision),
            .capstanVersion: String(entry.info.version),
            .capstanFormat: entry.info.format.rawValue,
        ]
        headers.append(contentsOf: rolloutHeader)
        if let noneMatch = request.headers[.ifNoneMatch],
            (try? HTTPHelpers.revision(fromETag: noneMatch, header: "If-None-Match")) == entry.info.revision
        {
            headers[.contentType] = nil
            return Response(status: .notModified, headers: headers)
        }
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(data: entry.content)))
    }

    private func delete(_ request: Request, _ context: Context) async throws -> Response {
        let key = try HTTPHelpers.key(request, after: "/v1/config/")
        if let rollout = HTTPHelpers.string(request, "rollout") {
            let info = try await rollouts.putCandidate(
                rollout, key: key, content: Data(), format: nil, deleting: true, comment: HTTPHelpers.string(request, "comment") ?? "",
                author: context.author(request))
            return try HTTPHelpers.json(info)
        }
        if try Self.flag(request, "force") { try await rollouts.abortHolding(key, actor: context.author(request)) }
        let info = try await service.delete(key, author: context.author(request), ifRevision: try ifMatch(request))
        return HTTPHelpers.json(info)
    }

    private func list(_ request: Request, _ context: Context) async throws -> Response {
        let prefix = try KeyPrefix(HTTPHelpers.string(request, "prefix") ?? "")
        let limit = try HTTPHelpers.int64(request, "limit").map { Int($0) }
        if let index = try HTTPHelpers.int64(request, "index") {
            let wait = try HTTPHelpers.duration(request, "wait") ?? Self.defaultWait
            metrics.longPolls.increment()
            defer { metrics.longPolls.decrement() }
            let service = self.service
            // A token revoked (or expired) while the poll waits ends it with 401.
            try await context.whileTokenWorks { try await service.waitForChange(prefix, after: index, timeout: wait) }
        }
        let list = try await service.list(prefix, limit: limit)
        return try HTTPHelpers.json(list, headers: [.capstanIndex: String(list.revision)])
    }

    /// `If-Match: "R"` pins the current revision; `If-None-Match: *` means "only if absent".
    private func ifMatch(_ request: Request) throws -> Int64? {
        if let match = request.headers[.ifMatch] {
            return try HTTPHelpers.revision(fromETag: match, header: "If-Match")
        }
        if request.headers[.ifNoneMatch]?.trimmingCharacters(in: .whitespaces) == "*" {
            return 0
        }
        return nil
    }
}
