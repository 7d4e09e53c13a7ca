//! Request routing: `:path` with its query string (path matching, percent
//! decoding of path variables and query parameters, query-to-field binding),
//! under each fuzz configuration. Input: selector byte, then method `\n` `:path`.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use transcoder::RequestOutcome;

fuzz_target!(|data: &[u8]| {
    let (pick, rest) = common::split_selector(data);
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let (method, path) = text.split_once('\n').unwrap_or(("GET", text));
    let t = common::transcoder(pick);
    if let RequestOutcome::Transcode(plan) = t.route_request(method, path) {
        // A routed request with an empty body must still become a message or a clear error.
        let _ = t.request_frame(&plan, Some("application/json"), b"");
    }
});
