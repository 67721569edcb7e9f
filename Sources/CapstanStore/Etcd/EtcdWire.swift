import Foundation

// etcd v3's messages as its HTTP/JSON gateway speaks them: proto field names, 64-bit integers
// as strings (numbers accepted on input), bytes as base64, and fields at their zero value left
// out of answers.

enum EtcdWire {
    // MARK: Requests

    struct RangeRequest: Encodable {
        var key: Data
        var range_end: Data?
        var limit: Int64?
        var revision: Int64?
        var sort_order: String?
        var sort_target: String?
        var keys_only: Bool?
        var count_only: Bool?
    }

    struct PutRequest: Encodable {
        var key: Data
        var value: Data
        var lease: Int64?
        var prev_kv: Bool?
    }

    struct DeleteRangeRequest: Encodable {
        var key: Data
        var range_end: Data?
    }

    struct RequestOp: Encodable {
        var request_range: RangeRequest?
        var request_put: PutRequest?
        var request_delete_range: DeleteRangeRequest?
    }

    struct Compare: Encodable {
        var result: String
        var target: String
        var key: Data
        var version: Int64?
        var create_revision: Int64?
        var mod_revision: Int64?
        var value: Data?
        var lease: Int64?
    }

    struct TxnRequest: Encodable {
        var compare: [Compare]
        var success: [RequestOp]
        var failure: [RequestOp]
    }

    struct CompactionRequest: Encodable {
        var revision: Int64
        var physical: Bool
    }

    struct LeaseGrantRequest: Encodable {
        var TTL: Int64
        var ID: Int64
    }

    struct LeaseIDRequest: Encodable {
        var ID: Int64
    }

    struct WatchCreateRequest: Encodable {
        var key: Data
        var range_end: Data?
        var start_revision: Int64?
    }

    struct WatchRequest: Encodable {
        var create_request: WatchCreateRequest
    }

    // MARK: Answers

    struct Header: Decodable {
        var revision: Int64

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            revision = try container.int64("revision")
        }
    }

    struct KeyValue: Decodable {
        var key: Data
        var value: Data
        var createRevision: Int64
        var modRevision: Int64
        var version: Int64
        var lease: Int64

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            key = try container.decodeIfPresent(Data.self, forKey: AnyKey("key")) ?? Data()
            value = try container.decodeIfPresent(Data.self, forKey: AnyKey("value")) ?? Data()
            createRevision = try container.int64("create_revision")
            modRevision = try container.int64("mod_revision")
            version = try container.int64("version")
            lease = try container.int64("lease")
        }
    }

    struct RangeResponse: Decodable {
        var header: Header
        var kvs: [KeyValue]
        var more: Bool
        var count: Int64

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            header = try container.decode(Header.self, forKey: AnyKey("header"))
            kvs = try container.decodeIfPresent([KeyValue].self, forKey: AnyKey("kvs")) ?? []
            more = try container.decodeIfPresent(Bool.self, forKey: AnyKey("more")) ?? false
            count = try container.int64("count")
        }
    }

    struct PutResponse: Decodable {
        var prevKV: KeyValue?

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            prevKV = try container.decodeIfPresent(KeyValue.self, forKey: AnyKey("prev_kv"))
        }
    }

    struct DeleteRangeResponse: Decodable {
        var deleted: Int64

        init(from decoder: any Decoder) throws {
            deleted = try decoder.container(keyedBy: AnyKey.self).int64("deleted")
        }
    }

    struct ResponseOp: Decodable {
        var range: RangeResponse?
        var put: PutResponse?
        var deleteRange: DeleteRangeResponse?

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            range = try container.decodeIfPresent(RangeResponse.self, forKey: AnyKey("response_range"))
            put = try container.decodeIfPresent(PutResponse.self, forKey: AnyKey("response_put"))
            deleteRange = try container.decodeIfPresent(DeleteRangeResponse.self, forKey: AnyKey("response_delete_range"))
        }
    }

    struct TxnResponse: Decodable {
        var header: Header
        var succeeded: Bool
        var responses: [ResponseOp]

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            header = try container.decode(Header.self, forKey: AnyKey("header"))
            succeeded = try container.decodeIfPresent(Bool.self, forKey: AnyKey("succeeded")) ?? false
            responses = try container.decodeIfPresent([ResponseOp].self, forKey: AnyKey("responses")) ?? []
        }
    }

    struct HeaderOnly: Decodable {
        var header: Header
    }

    struct LeaseResponse: Decodable {
        var id: Int64
        var ttl: Int64
        var error: String?

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            id = try container.int64("ID")
            ttl = try container.int64("TTL")
            error = try container.decodeIfPresent(String.self, forKey: AnyKey("error"))
        }
    }

    /// One message of a streamed answer (keep-alive, watch): `{"result": …}` or `{"error": …}`.
    struct StreamMessage<Result: Decodable>: Decodable {
        var result: Result?
        var error: ErrorBody?
    }

    struct Event: Decodable {
        var isDelete: Bool
        var kv: KeyValue

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            isDelete = try container.decodeIfPresent(String.self, forKey: AnyKey("type")) == "DELETE"
            kv = try container.decode(KeyValue.self, forKey: AnyKey("kv"))
        }
    }

    struct WatchResponse: Decodable {
        var header: Header?
        var created: Bool
        var canceled: Bool
        var compactRevision: Int64
        var cancelReason: String?
        var events: [Event]

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            header = try container.decodeIfPresent(Header.self, forKey: AnyKey("header"))
            created = try container.decodeIfPresent(Bool.self, forKey: AnyKey("created")) ?? false
            canceled = try container.decodeIfPresent(Bool.self, forKey: AnyKey("canceled")) ?? false
            compactRevision = try container.int64("compact_revision")
            cancelReason = try container.decodeIfPresent(String.self, forKey: AnyKey("cancel_reason"))
            events = try container.decodeIfPresent([Event].self, forKey: AnyKey("events")) ?? []
        }
    }

    /// What the gateway answers on an error: the gRPC status code and message.
    struct ErrorBody: Decodable {
        var code: Int
        var message: String

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            code = try container.decodeIfPresent(Int.self, forKey: AnyKey("code")) ?? 0
            message =
                try container.decodeIfPresent(String.self, forKey: AnyKey("message"))
                ?? container.decodeIfPresent(String.self, forKey: AnyKey("error")) ?? ""
        }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

extension KeyedDecodingContainer where Key == EtcdWire.AnyKey {
    /// A 64-bit integer the gateway sends as a string, a number, or not at all (zero).
    func int64(_ name: String) throws -> Int64 {
        let key = EtcdWire.AnyKey(name)
        if let text = try? decodeIfPresent(String.self, forKey: key) {
            guard let value = Int64(text) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "not an integer: \(text)")
            }
            return value
        }
        return try decodeIfPresent(Int64.self, forKey: key) ?? 0
    }
}
