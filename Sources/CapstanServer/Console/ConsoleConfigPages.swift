import CapstanCore
import Foundation
import HTTPTypes
import Hummingbird

/// A config key in the console: its page (content, history, compare, rollback) and its edit
/// flow: edit, check (refused at its line and column), diff against the current version,
/// publish (only if nobody wrote the key meanwhile).
struct ConsoleConfigPages {
    typealias Context = CapstanRequestContext

    let view: ConsoleView
    let service: ConfigService
    let rollouts: ConsoleRolloutPages

    func register(on router: GuardedRouter) {
        router.get("ui/configs/{namespace}/**", access: .page) { request, context in
            try await ConsolePages.shown(view, context) { try await keyPage(request, context) }
        }
        router.get("ui/edit/{namespace}/**", access: .page) { request, context in
            try await ConsolePages.shown(view, context) { try await editPage(request, context) }
        }
        router.post("ui/edit/{namespace}/**", access: .form) { request, context in
            try await ConsolePages.shown(view, context) { try await edited(request, context) }
        }
        router.get("ui/compare/{namespace}/**", access: .page) { request, context in
            try await ConsolePages.shown(view, context) { try await compare(request, context) }
        }
        router.post("ui/rollback/{namespace}/**", access: .form) { request, context in
            try await ConsolePages.shown(view, context) { try await rollback(request, context) }
        }
    }

    // MARK: The key

    private func keyPage(_ request: Request, _ context: Context) async throws -> Response {
        let key = try HTTPHelpers.key(request, after: "/ui/configs/")
        try context.authorize(.read, on: .config, target: key.description)
        var values = ConsolePages.frame(context, "configs")
        let entry = try await service.get(key)
        let info = entry.info
        values.merge(Self.describe(key, info)) { _, new in new }
        if info.secret != true { values["content"] = String(decoding: entry.content, as: UTF8.self) }
        let mayWrite = context.may(.write, on: .config, target: key.description)
        values["mayWrite"] = mayWrite && info.secret != true
        if let saved = request.uri.queryParameters["saved"] { values["flash"] = ["kind": "good", "text": "Published as revision \(saved)."] }
        let history = try await service.history(key, limit: 50).items
        values["history"] = history.map { version -> [String: Any] in
            [
                "revision": version.revision, "version": version.version, "author": version.author, "time": ConsolePages.time(version.time),
                "comment": version.comment, "size": ByteSize.human(version.size), "deleted": version.action == .delete,
                "canRollBack": mayWrite && version.revision != info.revision && version.action != .delete,
            ]
        }
        // Compare the version before against the current one unless told otherwise.
        let previous = history.dropFirst().first?.revision ?? info.revision
        values["revisions"] = history.map { ["revision": $0.revision, "isPrevious": $0.revision == previous] }
        values["csrf"] = context.consoleCSRF ?? ""
        values["current"] = info.revision
        return view.page("config", values)
    }

    // MARK: Editing

    private func editPage(_ request: Request, _ context: Context) async throws -> Response {
        let key = try HTTPHelpers.key(request, after: "/ui/edit/")
        try context.authorize(.write, on: .config, target: key.description)
        let (entry, _) = try await service.current(key)
        if entry?.info.secret == true {
            throw CapstanError(.invalidArgument, "config \(key) is a secret: the console does not edit secrets; use capstan config put --secret")
        }
        let content = entry.map { String(decoding: $0.content, as: UTF8.self) } ?? ""
        return editor(key, context: context, content: content, base: entry?.info.revision ?? 0, comment: "", error: nil)
    }

    /// The edit form's answer: `step=check` (or a content that does not parse) shows the check
    /// and the diff; `step=publish` writes the key, if it is still at the revision the edit began from.
    private func edited(_ request: Request, _ context: Context) async throws -> Response {
        let key = try HTTPHelpers.key(request, after: "/ui/edit/")
        try context.authorize(.write, on: .config, target: key.description)
        var request = request
        let fields = FormFields(try await AuditTrail.collectBody(&request, upTo: ConsoleRoutes.maxForm))
        // Browsers send a textarea's lines ending in CRLF; configs keep LF.
        let content = (fields["content"] ?? "").replacingOccurrences(of: "\r\n", with: "\n")
        let comment = fields["comment"] ?? ""
        guard let base = fields["base"].flatMap({ Int64($0) }), base >= 0 else {
            throw CapstanError(.invalidArgument, "the form lost the revision the edit began from: open the editor again")
        }
        do {
            try service.validate(Data(content.utf8), format: ConfigFormat.infer(fromPath: key.path), key: key)
        } catch let error as CapstanError {
            return editor(key, context: context, content: content, base: base, comment: comment, error: error, status: .unprocessableContent)
        }
        switch fields["step"] {
        case "publish": break
        case "candidate": return try await candidate(key, fields: fields, content: content, context: context, author: context.author(request))
        case "edit": return editor(key, context: context, content: content, base: base, comment: comment, error: nil)
        default: return try await preview(key, context: context, content: content, base: base, comment: comment)
        }
        do {
            let info = try await service.put(
                key, content: Data(content.utf8), comment: comment, author: context.author(request), ifRevision: base == 0 ? nil : base)
            return ConsoleView.redirect(to: "/ui/configs/\(key)?saved=\(info.revision)")
        } catch let error as CapstanError where error.code == .preconditionFailed {
            let refused = CapstanError(.preconditionFailed, "someone published \(key) since you began: check the diff against the new version, then publish again")
            let current = try await service.current(key).entry?.info.revision ?? 0
            return editor(key, context: context, content: content, base: current, comment: comment, error: refused, status: .conflict)
        }
    }

    /// The diff between the current version and the edit, with the form that publishes it.
    private func preview(_ key: ConfigKey, context: Context, content: String, base: Int64, comment: String) async throws -> Response {
        var values = ConsolePages.frame(context, "configs")
        let (entry, _) = try await service.current(key)
        let current = entry.map { String(decoding: $0.content, as: UTF8.self) } ?? ""
        values.merge([
            "key": key.description, "namespace": key.namespace, "path": key.path, "content": content, "base": base, "comment": comment,
            "csrf": context.consoleCSRF ?? "", "stale": (entry?.info.revision ?? 0) != base,
        ]) { _, new in new }
        let diff = UnifiedDiff.make(old: current, new: content, oldLabel: "\(key)@\(entry?.info.revision ?? 0)", newLabel: "\(key) (edited)")
        values["diff"] = Self.lines(of: diff)
        values["unchanged"] = diff.isEmpty
        // Gray release: an existing key's edit may go to a rollout's members first.
        if entry != nil {
            values["gray"] = ["rollouts": try await rollouts.open(for: context).map { ["name": $0] }]
        }
        return view.page("preview", values)
    }

    /// Publishes the edit as a candidate of an open rollout, or of a new one started from here.
    private func candidate(_ key: ConfigKey, fields: FormFields, content: String, context: Context, author: String) async throws -> Response {
        var name = fields["rollout"] ?? ""
        if name.isEmpty {
            name = fields["name"] ?? ""
            _ = try await rollouts.rollouts.start(name, try ConsoleRolloutPages.spec(fields), actor: author)
        }
        _ = try await rollouts.rollouts.putCandidate(
            name, key: key, content: Data(content.utf8), format: nil, comment: fields["comment"] ?? "", author: author)
        return ConsoleView.redirect(to: "/ui/rollouts/\(name)")
    }

    private func editor(
        _ key: ConfigKey, context: Context, content: String, base: Int64, comment: String, error: CapstanError?,
        status: HTTPResponse.Status = .ok
    ) -> Response {
        var values = ConsolePages.frame(context, "configs")
        values.merge([
            "key": key.description, "namespace": key.namespace, "path": key.path, "content": content, "base": base, "comment": comment,
            "csrf": context.consoleCSRF ?? "", "format": ConfigFormat.infer(fromPath: key.path).rawValue,
        ]) { _, new in new }
        if let error {
            var problem: [String: Any] = ["message": error.message]
            if let line = error.line {
                problem["where"] = error.column.map { "line \(line), column \($0)" } ?? "line \(line)"
                problem["excerpt"] = Self.excerpt(content, line: line, column: error.column)
                problem["hasExcerpt"] = true
            }
            values["problem"] = problem
        }
        return view.page("edit", values, status: status)
    }

    // MARK: Compare and roll back

    private func compare(_ request: Request, _ context: Context) async throws -> Response {
        let key = try HTTPHelpers.key(request, after: "/ui/compare/")
        try context.authorize(.read, on: .config, target: key.description)
        guard let from = try HTTPHelpers.int64(request, "from") else { throw CapstanError(.invalidArgument, "compare needs ?from=REVISION") }
        let to = try HTTPHelpers.int64(request, "to")
        var values = ConsolePages.frame(context, "configs")
        values.merge(["key": key.description, "namespace": key.namespace, "path": key.path, "from": from, "to": to ?? 0, "hasTo": to != nil]) { _, new in new }
        let diff = try await service.diff(key, from: from, to: to)
        values["diff"] = Self.lines(of: diff)
        values["unchanged"] = diff.isEmpty
        // The whole files side by side in one diff, for when the hunks' context is not enough.
        let whole = try await service.diff(key, from: from, to: to, context: Int.max / 4)
        values["whole"] = Self.lines(of: whole)
        return view.page("compare", values)
    }

    private func rollback(_ request: Request, _ context: Context) async throws -> Response {
        let key = try HTTPHelpers.key(request, after: "/ui/rollback/")
        try context.authorize(.write, on: .config, target: key.description)
        var request = request
        let fields = FormFields(try await AuditTrail.collectBody(&request, upTo: ConsoleRoutes.maxForm))
        guard let to = fields["to"].flatMap({ Int64($0) }) else { throw CapstanError(.invalidArgument, "the rollback form names no revision") }
        let info = try await service.rollback(
            key, to: to, author: context.author(request), comment: "rollback to revision \(to)", ifRevision: fields["base"].flatMap { Int64($0) })
        return ConsoleView.redirect(to: "/ui/configs/\(key)?saved=\(info.revision)")
    }

    // MARK: Parts

    static func describe(_ key: ConfigKey, _ info: ConfigVersionInfo) -> [String: Any] {
        [
            "key": key.description, "namespace": key.namespace, "path": key.path, "revision": info.revision, "version": info.version,
            "format": info.format.rawValue, "size": ByteSize.human(info.size), "author": info.author, "time": ConsolePages.time(info.time),
            "comment": info.comment, "hasComment": !info.comment.isEmpty, "secret": info.secret == true,
        ]
    }

    /// A unified diff's lines, each with the class that colours it.
    static func lines(of diff: String) -> [[String: Any]] {
        diff.split(separator: "\n", omittingEmptySubsequences: false).dropLast(diff.hasSuffix("\n") ? 1 : 0).map { line in
            let kind: String
            if line.hasPrefix("+++") || line.hasPrefix("---") {
                kind = "file"
            } else if line.hasPrefix("@@") {
                kind = "hunk"
            } else if line.hasPrefix("+") {
                kind = "add"
            } else if line.hasPrefix("-") {
                kind = "del"
            } else {
                kind = "same"
            }
            return ["text": String(line), "kind": kind]
        }
    }

    /// The lines around `line`, numbered, with a caret under `column` of the bad one.
    static func excerpt(_ content: String, line: Int, column: Int?) -> [[String: Any]] {
        let lines = content.split(separator: "\n", omittingEmptySubsequences: false)
        guard line >= 1 else { return [] }
        var rows: [[String: Any]] = []
        for number in max(1, line - 2)...min(lines.count, line + 1) where number >= 1 {
            rows.append(["number": number, "text": String(lines[number - 1]), "bad": number == line])
            if number == line, let column, column >= 1 {
                rows.append(["number": "", "text": String(repeating: " ", count: column - 1) + "^", "caret": true])
            }
        }
        return rows
    }
}
