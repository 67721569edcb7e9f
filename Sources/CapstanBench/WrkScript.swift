/// Lua scripts for `wrk`: the pieces both targets share (thread numbering, base64, the result
/// line the benchmark parses) and the quoting of values into Lua source.
enum WrkScript {
    /// Marks the line `done` prints, so the benchmark can find it among wrk's own output.
    static let resultMarker = "capstan-bench-wrk"

    /// Numbers wrk's threads 0, 1, … (global `id` in each thread's Lua state) and prints the
    /// figures the benchmark reads once the run is over.
    static let common = #"""
        local threads = 0
        function setup(thread)
          thread:set("id", threads)
          threads = threads + 1
        end

        function done(summary, latency, requests)
          local e = summary.errors
          io.write(string.format(
            "\#(resultMarker) requests=%d duration_us=%d status=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
            summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
            latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
        end

        """#

    /// `b64(s)`: standard base64 with padding, for etcd's JSON gateway.
    static let base64 = #"""
        local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        local function b64char(n)
          return b64chars:sub(n + 1, n + 1)
        end
        function b64(s)
          local out = {}
          for i = 1, #s, 3 do
            local a, b, c = s:byte(i, i + 2)
            local n = a * 65536 + (b or 0) * 256 + (c or 0)
            out[#out + 1] = b64char(math.floor(n / 262144) % 64) .. b64char(math.floor(n / 4096) % 64)
              .. (b and b64char(math.floor(n / 64) % 64) or "=") .. (c and b64char(n % 64) or "=")
          end
          return table.concat(out)
        end

        """#

    /// A get script: each thread builds one request per preloaded key at start (`build(i)` for
    /// key index `i`), then sends random ones; the generator does no per-request work beyond the
    /// random pick, on either target.
    static func randomGets(keys: Int, build: String) -> String {
        common + base64 + """
            \(build)
            local requests = {}
            function init(args)
              math.randomseed(id * 7919 + 17)
              for i = 1, \(keys) do
                requests[i] = build(i - 1)
              end
            end

            function request()
              return requests[math.random(\(keys))]
            end

            """
    }

    /// A put script: each thread writes fresh keys `prefix .. id .. "-" .. n .. ".txt"`, with
    /// `build(key)` making the request for a key relative to the target's namespace or prefix.
    static func freshPuts(prefix: String, build: String) -> String {
        common + base64 + """
            \(build)
            local n = 0
            local prefix
            function init(args)
              prefix = \(quoted(prefix)) .. id .. "-"
            end

            function request()
              n = n + 1
              return build(prefix .. n .. ".txt")
            end

            """
    }

    /// `text` as a Lua string literal.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.isASCII, scalar.value >= 0x20, scalar.value != 0x7F {
                    out.unicodeScalars.append(scalar)
                } else {
                    // Three digits always: a shorter escape could swallow a digit that follows.
                    for byte in String(scalar).utf8 { out += "\\" + String(Int(byte) + 1000).dropFirst() }
                }
            }
        }
        return out + "\""
    }
}
