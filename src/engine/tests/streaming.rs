//! Server streaming: the array / NDJSON / SSE formats, errors before and after
//! messages, empty streams, framing split anywhere, size limits.

#[macro_use]
mod support;

use prost::Message;
use prost_reflect::DynamicMessage;
use serde_json::json;
use support::{message, plan, transcoder};
use transcoder::frame::encode_frame;
use transcoder::{GrpcStatusHeaders, HttpReply, StreamFormat, Transcoder};

const PATH: &str = "/v1/shelves/1/books:stream";

fn book(n: u32) -> Vec<u8> {
    let mut m = DynamicMessage::new(message("bookstore.v1.Book"));
    m.set_field_by_name("name", prost_reflect::Value::String(format!("shelves/1/books/{n}")));
    m.set_field_by_name("title", prost_reflect::Value::String(format!("Book {n}")));
    m.encode_to_vec()
}

fn framed(count: u32) -> Vec<u8> {
    (1..=count).flat_map(|n| encode_frame(&book(n))).collect()
}

fn ok() -> GrpcStatusHeaders<'static> {
    GrpcStatusHeaders { status: Some("0"), ..Default::default() }
}

fn failed() -> GrpcStatusHeaders<'static> {
    GrpcStatusHeaders { status: Some("5"), message: Some("gone"), ..Default::default() }
}

/// The reply for a whole gRPC body fed in chunks of `chunk` bytes.
fn reply(t: &Transcoder, body: &[u8], chunk: usize, grpc: GrpcStatusHeaders<'_>) -> HttpReply {
    let p = plan(t, "POST", PATH);
    let mut stream = t.response_stream(&p).expect("a server stream");
    let mut out = Vec::new();
    for piece in body.chunks(chunk.max(1)) {
        match t.stream_chunk(&p, &mut stream, piece) {
            Ok(bytes) => out.extend(bytes),
            Err(status) => return t.local_error(&status),
        }
    }
    t.stream_reply(&mut stream, out, grpc)
}

fn text(r: &HttpReply) -> &str {
    std::str::from_utf8(&r.body).unwrap()
}

fn header<'a>(r: &'a HttpReply, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

const B1: &str = r#"{"name":"shelves/1/books/1","title":"Book 1"}"#;
const B2: &str = r#"{"name":"shelves/1/books/2","title":"Book 2"}"#;

test! { fn unary_methods_have_no_stream() {
    let t = transcoder(json!({}));
    assert!(t.response_stream(&plan(&t, "GET", "/v1/shelves")).is_none());
    assert!(t.server_streaming(&plan(&t, "GET", PATH)));
}}

test! { fn json_array_like_envoy() {
    let t = transcoder(json!({}));
    let r = reply(&t, &framed(2), 1 << 20, ok());
    assert_eq!((r.status, header(&r, "content-type")), (200, Some("application/json")));
    assert_eq!(text(&r), format!("[{B1},{B2}]"));
    assert_eq!(text(&reply(&t, &[], 10, ok())), "[]");
    // Envoy closes the array and drops the status; we add it as headers.
    let r = reply(&t, &framed(2), 7, failed());
    assert_eq!((r.status, text(&r)), (200, format!("[{B1},{B2}]").as_str()));
    assert_eq!(header(&r, "grpc-status"), Some("5"));
}}

test! { fn newline_delimited_with_final_error_record() {
    let t = transcoder(json!({"print_options": {"stream_newline_delimited": true}}));
    let r = reply(&t, &framed(2), 3, ok());
    assert_eq!((r.status, header(&r, "content-type")), (200, Some("application/json")));
    assert_eq!(text(&r), format!("{B1}\n{B2}\n"));
    assert_eq!(text(&reply(&t, &[], 3, ok())), "");
    let r = reply(&t, &framed(1), 3, failed());
    assert_eq!(text(&r), format!("{B1}\n{{\"error\":{{\"code\":5,\"message\":\"gone\"}}}}\n"));
}}

test! { fn server_sent_events_with_error_event() {
    let t = transcoder(json!({"print_options": {"stream_sse_style_delimited": true, "add_whitespace": false}}));
    let r = reply(&t, &framed(2), 1, ok());
    assert_eq!((r.status, header(&r, "content-type")), (200, Some("text/event-stream")));
    assert_eq!(text(&r), format!("data: {B1}\n\ndata: {B2}\n\n"));
    let r = reply(&t, &framed(1), 1, failed());
    assert_eq!(text(&r), format!("data: {B1}\n\nevent: error\ndata: {{\"code\":5,\"message\":\"gone\"}}\n\n"));
}}

test! { fn error_before_any_message_is_the_answer() {
    for print in [json!({}), json!({"stream_newline_delimited": true}), json!({"stream_sse_style_delimited": true})] {
        let t = transcoder(json!({"print_options": print, "convert_grpc_status": true}));
        let r = reply(&t, &[], 1, failed());
        assert_eq!((r.status, text(&r)), (404, r#"{"code":5,"message":"gone"}"#));
    }
}}

test! { fn framing_split_anywhere_and_zero_length_messages() {
    let t = transcoder(json!({}));
    let mut body = framed(3);
    body.extend(encode_frame(&[]));
    let whole = text(&reply(&t, &body, body.len(), ok())).to_string();
    let b3 = r#"{"name":"shelves/1/books/3","title":"Book 3"}"#;
    assert_eq!(whole, format!("[{B1},{B2},{b3},{{}}]"));
    for chunk in 1..12 {
        assert_eq!(text(&reply(&t, &body, chunk, ok())), whole, "chunks of {chunk}");
    }
    // A stream ending inside a frame is an error: after messages, reported as one.
    let r = reply(&t, &body[..body.len() - 2], 4, ok());
    assert_eq!((r.status, header(&r, "grpc-status")), (200, Some("13")));
    let r = reply(&t, &body[..3], 4, ok());
    assert_eq!(r.status, 500);
}}

test! { fn limits_bound_messages_and_output() {
    let t = transcoder(json!({"max_response_body_size": 60}));
    let r = reply(&t, &framed(1), 5, ok());
    assert_eq!(r.status, 200);
    let r = reply(&t, &framed(3), 5, ok());
    assert_eq!(r.status, 500);
    assert!(text(&r).contains("max_response_body_size"), "{}", text(&r));
    let big = encode_frame(&[0u8; 100]);
    let r = reply(&t, &big[..10], 10, ok());
    assert!(text(&r).contains("max_response_body_size"), "{}", text(&r));
}}

test! { fn formats_are_chosen_from_print_options() {
    let t = transcoder(json!({"print_options": {"stream_sse_style_delimited": true}}));
    let p = plan(&t, "GET", PATH);
    assert_eq!(t.response_stream(&p).unwrap().format(), StreamFormat::ServerSentEvents);
}}
