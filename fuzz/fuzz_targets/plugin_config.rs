//! The plugin configuration JSON (Envoy's `GrpcJsonTranscoder`): parsing and
//! validation, then, for a configuration that parses, the whole load with the
//! example descriptor set put in (so options reach the route table). Input: JSON.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use transcoder::{Transcoder, TranscoderConfig};

fuzz_target!(|data: &[u8]| {
    let _ = Transcoder::from_json(data);
    let Ok(mut config) = TranscoderConfig::from_json(data) else { return };
    config.proto_descriptor_bin = Some(common::example_set().to_vec());
    if let Ok(t) = Transcoder::new(config) {
        let _ = t.route_request("GET", "/v1/shelves/1?x=1");
    }
});
