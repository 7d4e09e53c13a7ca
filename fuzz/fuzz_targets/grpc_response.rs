//! gRPC replies to HTTP: frame decoding, decompression, protobuf to JSON for
//! unary replies (a rich type, an HttpBody, a `response_body` field) and for
//! server streams fed in arbitrary chunks. Input: selector byte, chunking
//! byte, then the gRPC response body.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use transcoder::{GrpcStatusHeaders, RequestOutcome};

const UNARY: &[(&str, &str)] = &[
    ("POST", "/v1/types:echo"),
    ("GET", "/v1/shelves/1/books/2/cover"),
    ("GET", "/v1/shelves/1/books/2/title"),
    ("GET", "/v1/shelves"),
];
const ENCODINGS: &[Option<&str>] = &[None, Some("gzip"), Some("deflate"), Some("snappy")];

fuzz_target!(|data: &[u8]| {
    let (pick, rest) = common::split_selector(data);
    let (chunking, body) = common::split_selector(rest);
    let t = common::transcoder(pick);
    let ok = GrpcStatusHeaders { status: Some("0"), ..Default::default() };
    let encoding = ENCODINGS[(pick >> 2) as usize % ENCODINGS.len()];
    if pick & 0x40 == 0 {
        let (method, path) = UNARY[(pick >> 4) as usize % UNARY.len()];
        let RequestOutcome::Transcode(plan) = t.route_request(method, path) else { return };
        let reply = t.unary_response_encoded(&plan, body, ok, encoding);
        assert!((200..600).contains(&reply.status));
        return;
    }
    let RequestOutcome::Transcode(plan) = t.route_request("GET", "/v1/shelves/1/books:stream") else { return };
    let Some(mut stream) = t.response_stream(&plan) else { return };
    stream.set_encoding(encoding);
    let step = usize::from(chunking).max(1);
    let mut out = Vec::new();
    for chunk in body.chunks(step) {
        match t.stream_chunk(&plan, &mut stream, chunk) {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(_) => return,
        }
    }
    let end = if chunking & 1 == 0 {
        ok
    } else {
        GrpcStatusHeaders { status: Some("13"), message: Some("late%20failure"), ..Default::default() }
    };
    let reply = t.stream_reply(&mut stream, out, end);
    assert!((200..600).contains(&reply.status));
});
