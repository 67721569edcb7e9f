import CapstanStore
import Foundation
import HTTPTypes
import Hummingbird

/// `/healthz`, `/readyz`, `/metrics` and the OpenAPI document.
struct OperationsRoutes {
    typealias Context = CapstanRequestContext

    let service: ConfigService
    let metrics: ServerMetrics
    let store: any KeyValueStore

    func register(on router: GuardedRouter) {
        router.get("healthz", access: .open) { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain"], body: ResponseBody(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("readyz", access: .open) { _, _ in
            // Ready when the store answers a read.
            _ = try await store.range(RangeRequest(.key(StoreLayout.root), countOnly: true))
            return Response(
                status: .ok, headers: [.contentType: "text/plain"], body: ResponseBody(byteBuffer: ByteBuffer(string: "ready\n")))
        }
        router.get("metrics", access: .open) { _, _ in
            let status = try await store.status()
            metrics.storeRevision.set(to: Double(status.revision))
            metrics.compactRevision.set(to: Double(status.compactRevision))
            metrics.openWatches.set(to: Double(status.watchers))
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer())))
        }
        router.get("v1/openapi.yaml", access: .open) { _, _ in
            guard let document = OpenAPIDocument.text else {
                throw HTTPError(.serviceUnavailable, message: "the OpenAPI document is not bundled with this binary")
            }
            return Response(
                status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: document)))
        }
    }
}

/// The OpenAPI 3.1 document, bundled as a resource.
public enum OpenAPIDocument {
    public static let text: String? = BundledResource.url("openapi.yaml").flatMap { try? String(contentsOf: $0, encoding: .utf8) }
}

/// Files bundled with the server (the OpenAPI document, the console's templates and assets).
enum BundledResource {
    /// Where the resource `name` is, if it was copied with the binary.
    static func url(_ name: String) -> URL? {
        // Look the resource up by hand: the generated `Bundle.module` traps when the bundle is
        // missing, and a server must not die because a doc file was not copied with it.
        let executableDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [
            Bundle.main.bundleURL, executableDirectory,
            URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent(),
        ]
        for directory in candidates {
            let url = directory.appendingPathComponent("capstan_CapstanServer.resources").appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: url.path) { return url }
        }
        return nil
    }
}
