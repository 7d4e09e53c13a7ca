//! gRPC replies into HTTP answers: print options, HttpBody, response_body,
//! status mapping and google.rpc.Status errors with details.

#[macro_use]
mod support;

use base64::Engine;
use prost::Message;
use serde_json::json;
use support::{encode_json, plan, transcoder};
use transcoder::frame::encode_frame;
use transcoder::status::RpcStatus;
use transcoder::{Code, GrpcStatusHeaders, HttpReply};

const OK: GrpcStatusHeaders<'static> =
    GrpcStatusHeaders { status: Some("0"), message: None, details_bin: None, trailers_only: false };

fn header<'a>(reply: &'a HttpReply, name: &str) -> Option<&'a str> {
    reply.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn json_body(reply: &HttpReply) -> serde_json::Value {
    serde_json::from_slice(&reply.body).expect("JSON body")
}

fn book() -> Vec<u8> {
    encode_json(
        "bookstore.v1.Book",
        json!({"name": "shelves/1/books/2", "title": "Dune", "genre": "FICTION", "pages": "412", "tags": []}),
    )
}

test! { fn messages_print_as_proto3_json() {
    let t = transcoder(json!({}));
    let p = plan(&t, "GET", "/v1/shelves/1/books/2");
    let reply = t.unary_response(&p, &encode_frame(&book()), OK);
    assert_eq!(reply.status, 200);
    assert_eq!(header(&reply, "content-type"), Some("application/json"));
    assert_eq!(
        String::from_utf8(reply.body).expect("utf8"),
        r#"{"name":"shelves/1/books/2","title":"Dune","genre":"FICTION","pages":"412"}"#
    );
}}

test! { fn print_options_are_honoured() {
    let t = transcoder(json!({"print_options": {
        "add_whitespace": true, "always_print_primitive_fields": true,
        "always_print_enums_as_ints": true, "preserve_proto_field_names": true
    }}));
    let p = plan(&t, "GET", "/v1/shelves/1/books/2");
    let reply = t.unary_response(&p, &encode_frame(&book()), OK);
    let text = String::from_utf8(reply.body.clone()).expect("utf8");
    assert!(text.starts_with("{\n \"name\""), "{text}");
    assert!(text.ends_with("}\n"), "add_whitespace ends with a newline, as protobuf's printer: {text:?}");
    assert_eq!(
        json_body(&reply),
        json!({"name": "shelves/1/books/2", "title": "Dune", "genre": 1, "pages": "412", "tags": []})
    );
}}

test! { fn http_body_responses_are_raw() {
    let t = transcoder(json!({}));
    let p = plan(&t, "GET", "/v1/shelves/1/books/2/cover");
    let body = encode_json("google.api.HttpBody", json!({"contentType": "image/png", "data": "iVBORw=="}));
    let reply = t.unary_response(&p, &encode_frame(&body), OK);
    assert_eq!(reply.status, 200);
    assert_eq!(header(&reply, "content-type"), Some("image/png"));
    assert_eq!(reply.body, b"\x89PNG");
}}

test! { fn response_body_picks_a_plain_field() {
    let t = transcoder(json!({}));
    let p = plan(&t, "GET", "/v1/shelves/1/books/2/title");
    let reply = t.unary_response(&p, &encode_frame(&book()), OK);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, br#""Dune""#);
    // A field left at its default still prints its default.
    let empty = t.unary_response(&p, &encode_frame(&[]), OK);
    assert_eq!(empty.body, br#""""#);
}}

test! { fn grpc_errors_map_to_http_status() {
    let t = transcoder(json!({}));
    let p = plan(&t, "GET", "/v1/shelves/1");
    for (code, http) in [
        (1, 499), (2, 500), (3, 400), (4, 504), (5, 404), (6, 409), (7, 403), (8, 429),
        (9, 400), (10, 409), (11, 400), (12, 501), (13, 500), (14, 503), (15, 500), (16, 401), (99, 500),
    ] {
        let code = code.to_string();
        let reply = t.unary_response(&p, &[], GrpcStatusHeaders { status: Some(&code), message: Some("x%20y"), details_bin: None, trailers_only: false });
        assert_eq!(reply.status, http, "grpc-status {code}");
        // Without convert_grpc_status the body is empty and the status stays in headers, as Envoy does.
        assert!(reply.body.is_empty());
        // A number outside 0..=16 is UNKNOWN (HTTP 500, grpc-status 2), as Envoy writes it.
        assert_eq!(header(&reply, "grpc-status"), Some(code.as_str()).filter(|_| code != "99").or(Some("2")));
        // grpc-message is passed on as the server sent it (percent-encoded), as Envoy does.
        assert_eq!(header(&reply, "grpc-message"), Some("x%20y"));
    }
    // Details stay in the headers only for a trailers-only answer (Envoy keeps that block).
    for (trailers_only, expected) in [(false, None), (true, Some("CAU"))] {
        let grpc = GrpcStatusHeaders { status: Some("5"), message: None, details_bin: Some("CAU"), trailers_only };
        assert_eq!(header(&t.unary_response(&p, &[], grpc), "grpc-status-details-bin"), expected);
    }
}}

test! { fn successful_replies_carry_the_grpc_status_header() {
    // Envoy moves a unary reply's trailers into the HTTP response headers.
    let t = transcoder(json!({}));
    let p = plan(&t, "GET", "/v1/shelves/1/books/2");
    let reply = t.unary_response(&p, &encode_frame(&book()), OK);
    assert_eq!(header(&reply, "grpc-status"), Some("0"));
    assert_eq!(header(&reply, "grpc-message"), None);
    // Not on errors the filter makes of a broken reply.
    let broken = t.unary_response(&p, &[0, 0, 0], OK);
    assert_eq!(header(&broken, "grpc-status"), None);
}}

test! { fn converted_errors_carry_decoded_details() {
    let t = transcoder(json!({"convert_grpc_status": true}));
    let p = plan(&t, "GET", "/v1/fail/5");
    let detail = prost_types::Any {
        type_url: "type.googleapis.com/bookstore.v1.FailureDetail".into(),
        value: encode_json("bookstore.v1.FailureDetail", json!({"reason": "requested", "code": 5})),
    };
    let info = prost_types::Any {
        type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
        value: encode_json("google.rpc.ErrorInfo", json!({"reason": "R", "domain": "d", "metadata": {"k": "v"}})),
    };
    let unknown = prost_types::Any { type_url: "type.googleapis.com/other.Unknown".into(), value: vec![1, 2, 3] };
    let status = RpcStatus { code: 5, message: "shelf 5 not found".into(), details: vec![detail, info, unknown] };
    let bin = base64::engine::general_purpose::STANDARD_NO_PAD.encode(status.encode_to_vec());
    let reply = t.unary_response(&p, &[], GrpcStatusHeaders { status: Some("5"), message: Some("shelf 5 not found"), details_bin: Some(&bin), trailers_only: false });
    assert_eq!(reply.status, 404);
    assert_eq!(header(&reply, "content-type"), Some("application/json"));
    assert_eq!(
        json_body(&reply),
        json!({"code": 5, "message": "shelf 5 not found", "details": [
            {"@type": "type.googleapis.com/bookstore.v1.FailureDetail", "reason": "requested", "code": 5},
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "R", "domain": "d", "metadata": {"k": "v"}},
            {"@type": "type.googleapis.com/other.Unknown", "value": "AQID"}
        ]})
    );
    // No details header: the status comes from grpc-status and grpc-message.
    let plain = t.unary_response(&p, &[], GrpcStatusHeaders { status: Some("7"), message: Some("no"), details_bin: Some("%%%"), trailers_only: false });
    assert_eq!(plain.status, 403);
    // A code outside 0..=16 in the details keeps its number in the JSON, as Envoy
    // prints the details' google.rpc.Status.
    let odd_status = RpcStatus { code: 17, message: "odd".into(), details: vec![] };
    let odd_bin = base64::engine::general_purpose::STANDARD.encode(odd_status.encode_to_vec());
    let odd = t.unary_response(&p, &[], GrpcStatusHeaders { status: Some("17"), message: Some("odd"), details_bin: Some(&odd_bin), trailers_only: false });
    assert_eq!(odd.status, 500);
    assert_eq!(json_body(&odd), json!({"code": 17, "message": "odd"}));
    // Empty details are left out, as Envoy prints google.rpc.Status (proto3 JSON).
    assert_eq!(String::from_utf8_lossy(&plain.body), r#"{"code":7,"message":"no"}"#);
}}

test! { fn error_details_print_in_field_order_with_the_print_options() {
    // Envoy prints the whole google.rpc.Status with its print options: details
    // keep their fields in declaration order, add_whitespace indents by one
    // space and ends with a newline, always_print_primitive_fields prints empties.
    let t = transcoder(json!({"convert_grpc_status": true, "print_options": {"add_whitespace": true}}));
    let p = plan(&t, "GET", "/v1/fail/5");
    let detail = prost_types::Any {
        type_url: "type.googleapis.com/bookstore.v1.FailureDetail".into(),
        value: encode_json("bookstore.v1.FailureDetail", json!({"reason": "requested", "code": 5})),
    };
    let status = RpcStatus { code: 5, message: "gone".into(), details: vec![detail] };
    let bin = base64::engine::general_purpose::STANDARD.encode(status.encode_to_vec());
    let reply = t.unary_response(&p, &[], GrpcStatusHeaders { status: Some("5"), message: Some("gone"), details_bin: Some(&bin), trailers_only: false });
    assert_eq!(
        String::from_utf8_lossy(&reply.body),
        "{\n \"code\": 5,\n \"message\": \"gone\",\n \"details\": [\n  {\n   \"@type\": \"type.googleapis.com/bookstore.v1.FailureDetail\",\n   \"reason\": \"requested\",\n   \"code\": 5\n  }\n ]\n}\n"
    );
    let all = transcoder(json!({"convert_grpc_status": true, "print_options": {"always_print_primitive_fields": true}}));
    let reply = all.unary_response(&p, &[], GrpcStatusHeaders { status: Some("9"), message: None, details_bin: None, trailers_only: false });
    assert_eq!(String::from_utf8_lossy(&reply.body), r#"{"code":9,"message":"","details":[]}"#);
}}

test! { fn numbers_and_non_finite_wrappers_print_like_protobuf() {
    let t = transcoder(json!({}));
    let p = plan(&t, "POST", "/v1/types:echo");
    let message = encode_json("bookstore.v1.AllTypes", json!({
        "doubleValue": 1.0, "floatValue": 123456789.125, "doubleWrapper": "NaN", "floatWrapper": "-Infinity",
        "structValue": {"n": 2.0, "small": 1e-7}, "repeatedInt64": ["1"]
    }));
    let reply = t.unary_response(&p, &encode_frame(&message), OK);
    assert_eq!(
        String::from_utf8_lossy(&reply.body),
        r#"{"doubleValue":1,"floatValue":123456792,"repeatedInt64":["1"],"structValue":{"n":2,"small":1e-07},"floatWrapper":"-Infinity","doubleWrapper":"NaN"}"#
    );
}}

test! { fn broken_replies_are_json_errors() {
    let t = transcoder(json!({}));
    let p = plan(&t, "GET", "/v1/shelves/1");
    let cases: Vec<(Vec<u8>, GrpcStatusHeaders<'_>, u16, &str)> = vec![
        (vec![0, 0, 0], OK, 500, "bad gRPC reply"),
        (vec![9, 0, 0, 0, 0], OK, 500, "flag"),
        ([encode_frame(b""), encode_frame(b"")].concat(), OK, 500, "2 messages"),
        (vec![1, 0, 0, 0, 1, 7], OK, 501, "compressed"),
        (encode_frame(&[0xff, 0xff, 0xff]), OK, 500, "not a valid"),
        (encode_frame(&[]), GrpcStatusHeaders::default(), 500, "without a grpc-status"),
    ];
    for (body, grpc, http, needle) in cases {
        let reply = t.unary_response(&p, &body, grpc);
        assert_eq!(reply.status, http, "{needle}");
        if !reply.body.is_empty() {
            let err = json_body(&reply);
            assert!(err["message"].as_str().unwrap_or_default().contains(needle), "{needle}: {err}");
        }
    }
}}

test! { fn responses_over_max_response_body_size_name_the_limit() {
    let t = transcoder(json!({"max_response_body_size": 10}));
    let p = plan(&t, "GET", "/v1/shelves/1/books/2");
    let reply = t.unary_response(&p, &encode_frame(&book()), OK);
    assert_eq!(reply.status, 500);
    let err = json_body(&reply);
    assert!(err["message"].as_str().unwrap_or_default().contains("max_response_body_size (10 bytes)"), "{err}");
}}

test! { fn local_errors_are_always_json() {
    let t = transcoder(json!({}));
    let reply = t.local_error(&transcoder::Status::new(Code::InvalidArgument, "bad \"field\""));
    assert_eq!(reply.status, 400);
    assert_eq!(json_body(&reply), json!({"code": 3, "message": "bad \"field\""}));
}}

test! { fn map_entries_print_sorted_by_key_like_protobuf() {
    // prost-reflect keeps maps in a HashMap; protobuf prints entries sorted by
    // key (integers numerically), Struct fields by name, at any depth.
    for pretty in [false, true] {
        let t = transcoder(json!({"convert_grpc_status": true, "print_options": {"add_whitespace": pretty}}));
        let p = plan(&t, "POST", "/v1/types:echo");
        let message = encode_json("bookstore.v1.AllTypes", json!({
            "stringMap": {"b": "1", "a": "2", "c": "3", "aa": "4", "B": "5"},
            "int32Map": {"5": "x", "-1": "y", "10": "z"},
            "int64Map": {"20": {"name": "n"}, "3": {"name": "m"}},
            "structValue": {"z": 1, "a": {"y": true, "b": [{"d": 1, "c": 2}]}},
            "floatValue": 0.1,
        }));
        let reply = t.unary_response(&p, &encode_frame(&message), OK);
        let compact: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
        assert_eq!(
            serde_json::to_string(&compact).expect("prints"),
            r#"{"floatValue":0.1,"stringMap":{"B":"5","a":"2","aa":"4","b":"1","c":"3"},"int32Map":{"-1":"y","5":"x","10":"z"},"int64Map":{"3":{"name":"m"},"20":{"name":"n"}},"structValue":{"a":{"b":[{"c":2,"d":1}],"y":true},"z":1}}"#
        );
        assert_eq!(reply.body.ends_with(b"\n"), pretty);
        // Error details: ErrorInfo.metadata.
        let info = prost_types::Any {
            type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
            value: encode_json("google.rpc.ErrorInfo", json!({"reason": "R", "metadata": {"k2": "v", "k1": "v", "a": "v"}})),
        };
        let status = RpcStatus { code: 5, message: "m".into(), details: vec![info] };
        let bin = base64::engine::general_purpose::STANDARD.encode(status.encode_to_vec());
        let reply = t.unary_response(&p, &[], GrpcStatusHeaders { status: Some("5"), message: None, details_bin: Some(&bin), trailers_only: false });
        let text = String::from_utf8_lossy(&reply.body).replace([' ', '\n'], "");
        assert!(text.contains(r#""metadata":{"a":"v","k1":"v","k2":"v"}"#), "{text}");
    }
}}

test! { fn envoy_error_statuses_read_back_as_the_same_status() {
    // Errors that keep Envoy's HTTP status carry the code that maps back to it.
    for status in [400, 401, 403, 404, 409, 429, 499, 500, 501, 503, 504] {
        assert_eq!(transcoder::Code::for_http_error(status).http_status(), status, "{status}");
    }
    // No code maps to these: the nearest ones.
    assert_eq!(transcoder::Code::for_http_error(413), transcoder::Code::ResourceExhausted);
    assert_eq!(transcoder::Code::for_http_error(502), transcoder::Code::Unavailable);
    assert_eq!(transcoder::Code::for_http_error(431), transcoder::Code::Unknown);
}}
