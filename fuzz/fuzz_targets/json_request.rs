//! JSON bodies to protobuf: the request message of a rich type (`AllTypes`:
//! every scalar, enums, maps, oneofs, nested and well-known types), of a body
//! field (`Book`), and of an HttpBody upload. What is accepted must decode as
//! valid protobuf of the input type. Input: selector byte, then the body.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use prost_reflect::DynamicMessage;
use transcoder::RequestOutcome;

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/types:echo"),
    ("POST", "/v1/shelves/7/books"),
    ("PATCH", "/v1/shelves/1/books/2?updateMask=title,author"),
    ("POST", "/v1/shelves/1/books/2:cover"),
    ("POST", "/v1/shelves/1/books:stream"),
];

fuzz_target!(|data: &[u8]| {
    let (pick, body) = common::split_selector(data);
    let t = common::transcoder(pick >> 4);
    let (method, path) = ROUTES[(pick & 0x0f) as usize % ROUTES.len()];
    let RequestOutcome::Transcode(plan) = t.route_request(method, path) else { return };
    let content_type = if pick & 0x80 != 0 { "application/json; charset=utf-8" } else { "application/json" };
    if let Ok(bytes) = t.request_message(&plan, Some(content_type), body) {
        let input = t.method(&plan).expect("routed method").input.clone();
        DynamicMessage::decode(input, bytes.as_slice()).expect("the engine wrote invalid protobuf");
    }
});
