//! Behaviours Envoy's own transcoder tests pin (its bookstore service), on the
//! shapes of tests/e2e/protos/cases/v1/cases.proto: bodies on rules without
//! `body:`, query parameters named by a `json_name`, empty client streams and
//! trailers-only errors on server streams. tests/e2e/test_envoy_cases.py sends
//! the same requests through the native filter and ours.

#[macro_use]
mod support;

use serde_json::json;
use support::{cases_transcoder, plan, request_error, request_json};
use transcoder::{Code, GrpcStatusHeaders, Transcoder};

test! { fn a_body_on_a_rule_without_body_is_the_whole_message() {
    let t = cases_transcoder(json!({}));
    assert_eq!(
        request_json(&t, "POST", "/echoAuthor", r#"{"id": "1234", "gender": "FEMALE"}"#),
        json!({"id": "1234", "gender": "FEMALE"})
    );
    // The path's binding is merged after the body; the body's own value of the field wins.
    assert_eq!(request_json(&t, "PUT", "/authors/7", r#"{"lname": "x"}"#), json!({"id": "7", "lname": "x"}));
    assert_eq!(request_json(&t, "PUT", "/authors/7", r#"{"id": "9"}"#), json!({"id": "9"}));
    // Without a body nothing changes.
    assert_eq!(request_json(&t, "GET", "/authors/7", ""), json!({"id": "7"}));
    let err = request_error(&t, "POST", "/echoAuthor", r#"{"gender": "PURPLE"}"#);
    assert_eq!(err.code, Code::InvalidArgument, "{err}");
    assert!(err.message.contains("gender"), "{err}");
}}

test! { fn an_http_body_request_without_body_rule_gets_the_raw_body() {
    let t = cases_transcoder(json!({}));
    let plan = plan(&t, "POST", "/echoRawBody");
    let message = t.request_message(&plan, Some("text/plain"), b"hello raw").expect("transcodes");
    let expected = [&b"\x0a\x0atext/plain\x12\x09hello raw"[..]].concat();
    assert_eq!(message, expected);
}}

test! { fn query_parameters_named_by_json_name() {
    let t = cases_transcoder(json!({}));
    for query in ["shelf.search%5Bdecoded%5D=Google", "shelf.search[decoded]=Google", "shelf.search_decoded=Google"] {
        assert_eq!(
            request_json(&t, "POST", &format!("/shelf?{query}"), r#"{"theme": "t"}"#),
            json!({"shelf": {"theme": "t", "search[decoded]": "Google"}}),
            "{query}"
        );
    }
    // A json_name that holds escapes itself matches as written, before decoding.
    assert_eq!(
        request_json(&t, "POST", "/shelf?shelf.search%5Bencoded%5D=Google", ""),
        json!({"shelf": {"search%5Bencoded%5D": "Google"}})
    );
    assert_eq!(
        request_json(&t, "GET", "/shelves/3?filter.search%5Bdecoded%5D=G&filter.theme=x", ""),
        json!({"shelf": "3", "filter": {"theme": "x", "search[decoded]": "G"}})
    );
}}

/// The frames a whole client-stream body makes, sent in `chunks`.
fn stream_frames(
    t: &Transcoder,
    path: &str,
    content_type: &str,
    chunks: &[&[u8]],
) -> Result<Vec<Vec<u8>>, transcoder::Status> {
    let plan = plan(t, "POST", path);
    let mut stream = t.request_stream(&plan).expect("a client stream");
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        out.push(t.request_stream_chunk(&plan, &mut stream, Some(content_type), chunk, i + 1 == chunks.len())?);
    }
    Ok(out)
}

test! { fn a_raw_client_stream_sends_a_message_per_chunk_and_one_for_an_empty_body() {
    let t = cases_transcoder(json!({}));
    for path in ["/streamBody", "/streamBodyUnbound"] {
        let frames = stream_frames(&t, path, "text/plain", &[b""]).expect("empty body");
        assert_eq!(frames, [b"\x00\x00\x00\x00\x0c\x0a\x0atext/plain".to_vec()], "{path}");
        let frames = stream_frames(&t, path, "text/plain", &[b"ab", b"", b"c", b""]).expect("chunks");
        assert_eq!(
            frames,
            [
                b"\x00\x00\x00\x00\x10\x0a\x0atext/plain\x12\x02ab".to_vec(),
                Vec::new(),
                b"\x00\x00\x00\x00\x03\x12\x01c".to_vec(),
                Vec::new(),
            ],
            "{path}"
        );
    }
}}

test! { fn an_empty_json_client_stream_is_refused() {
    let t = cases_transcoder(json!({}));
    for path in ["/bulk/shelves", "/bulk/shelvesWhole"] {
        for body in [&[&b""[..]][..], &[b" \n", b""]] {
            let err = stream_frames(&t, path, "application/json", body).expect_err("an empty stream body");
            assert_eq!(err.code, Code::InvalidArgument, "{path}: {err}");
            assert!(err.message.contains("`[]` for none"), "{err}");
        }
        assert_eq!(stream_frames(&t, path, "application/json", &[b"[]"]).expect("no messages"), [Vec::<u8>::new()]);
        // A request without any body (headers only) is refused the same way.
        let err = request_error(&t, "POST", path, "");
        assert_eq!(err.code, Code::InvalidArgument, "{path}: {err}");
    }
}}

test! { fn a_trailers_only_error_on_a_json_stream_is_an_empty_array_without_conversion() {
    let grpc = GrpcStatusHeaders { status: Some("5"), message: Some("Shelf 37 not found"), details_bin: None, trailers_only: true };
    let t = cases_transcoder(json!({"convert_grpc_status": false}));
    for (path, body) in [("/shelves/37/books", &b"[]"[..]), ("/shelves/37/raw", b"")] {
        let plan = plan(&t, "GET", path);
        let mut stream = t.response_stream(&plan).expect("a server stream");
        let reply = t.stream_reply(&mut stream, Vec::new(), grpc);
        assert_eq!((reply.status, reply.body.as_slice()), (404, body), "{path}");
        assert!(reply.headers.contains(&("grpc-status".into(), "5".into())), "{path}: {:?}", reply.headers);
    }
    // With conversion the body is the google.rpc.Status, as for any error.
    let t = cases_transcoder(json!({"convert_grpc_status": true}));
    let plan = plan(&t, "GET", "/shelves/37/books");
    let mut stream = t.response_stream(&plan).expect("a server stream");
    let reply = t.stream_reply(&mut stream, Vec::new(), grpc);
    let status: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
    assert_eq!((reply.status, status), (404, json!({"code": 5, "message": "Shelf 37 not found"})));
}}

test! { fn a_struct_nested_past_protobufs_limit_is_refused_naming_the_field() {
    let t = cases_transcoder(json!({}));
    let mut value = json!({"leaf": 1});
    for _ in 0..60 {
        value = json!({ "a": value });
    }
    let err = request_error(&t, "POST", "/echoAuthor", &json!({"extra": value}).to_string());
    assert_eq!(err.code, Code::InvalidArgument);
    assert!(err.message.contains("`extra`") && err.message.contains("deeper than"), "{err}");
}}
