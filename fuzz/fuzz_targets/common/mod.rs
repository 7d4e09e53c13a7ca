//! What every fuzz target shares: the example protos (compiled in memory by the
//! engine tests' own support module, so the fuzzers see the descriptors the
//! tests see) and transcoders built once per process under a few configurations.

#![allow(dead_code)]

#[path = "../../../src/engine/tests/support/mod.rs"]
mod support;

use std::sync::OnceLock;

pub use support::descriptor_set;
use transcoder::Transcoder;

/// Configurations the targets pick from with one input byte, so option-dependent
/// code paths (unescaping, validation, printing, limits) are all reached.
const CONFIGS: &[&str] = &[
    r#"{}"#,
    r#"{"url_unescape_spec": "ALL_CHARACTERS", "query_param_unescape_plus": true,
        "match_unregistered_custom_verb": true, "case_insensitive_enum_parsing": true,
        "convert_grpc_status": true, "auto_mapping": true}"#,
    r#"{"url_unescape_spec": "ALL_CHARACTERS_EXCEPT_SLASH", "ignore_unknown_query_parameters": true,
        "ignored_query_parameters": ["key", "api_key"],
        "print_options": {"add_whitespace": true, "always_print_primitive_fields": true,
                          "always_print_enums_as_ints": true, "preserve_proto_field_names": true,
                          "stream_newline_delimited": true},
        "max_request_body_size": 4096, "max_response_body_size": 4096}"#,
    r#"{"request_validation_options": {"reject_unknown_method": true, "reject_unknown_query_parameters": true,
        "reject_binding_body_field_collisions": true},
        "convert_grpc_status": true, "print_options": {"stream_sse_style_delimited": true}}"#,
];

/// The transcoder for configuration `pick % CONFIGS.len()`, built on first use.
pub fn transcoder(pick: u8) -> &'static Transcoder {
    static BUILT: OnceLock<Vec<Transcoder>> = OnceLock::new();
    let all = BUILT.get_or_init(|| {
        CONFIGS
            .iter()
            .map(|extra| {
                let extra: serde_json::Value = serde_json::from_str(extra).expect("fuzz config is JSON");
                support::transcoder(extra)
            })
            .collect()
    });
    &all[pick as usize % all.len()]
}

/// The example FileDescriptorSet, compiled once.
pub fn example_set() -> &'static [u8] {
    static SET: OnceLock<Vec<u8>> = OnceLock::new();
    SET.get_or_init(descriptor_set)
}

/// Splits an input into a leading selector byte and the rest.
pub fn split_selector(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (*first, rest),
        None => (0, data),
    }
}
