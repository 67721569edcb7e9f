/// One agent count's figures in `CapstanBench rollout`: per run, each push of the rollout and
/// the plain push after it.
struct RolloutResult: Sendable {
    /// The agents in the fleet.
    var count: Int
    /// The candidate's put, timed to the members of the 10 % step.
    var tenth: [PushSample] = []
    /// The step to 100 %, timed to the nodes the first step left out.
    var everyone: [PushSample] = []
    /// The promotion, timed to every node.
    var promoted: [PushSample] = []
    /// A plain write of the same config, timed to every node: the peer.
    var plain: [PushSample] = []

    /// The pushes in report order, with how the report names each.
    var pushes: [(name: String, samples: [PushSample])] {
        [
            ("candidate put, 10 % step (its members)", tenth),
            ("step to 100 % (the other nodes)", everyone),
            ("promote (every node)", promoted),
            ("plain push (every node): the peer", plain),
        ]
    }

    /// The median over the runs of one latency figure, in milliseconds.
    static func median(_ samples: [PushSample], _ value: (LatencySummary) -> Double) -> Double {
        Median.of(samples.map { value($0.latency) })
    }

    /// The median over the runs of one CPU figure, in seconds; nil when /proc could not tell.
    static func median(_ samples: [PushSample], _ value: (PushSample) -> Double?) -> Double? {
        let values = samples.compactMap(value)
        return values.isEmpty ? nil : Median.of(values)
    }
}
