//! Inputs the fuzz targets (fuzz/, `make fuzz`) found crashing the engine, kept
//! as tests once fixed. The raw input files are in tests/fuzz_inputs/.

#[macro_use]
mod support;

use base64::Engine;
use prost::Message;
use transcoder::{decode_descriptor_set, Transcoder};

/// descriptor_set: a file with `syntax = "proto4"` made prost-reflect panic
/// (index out of bounds) inside `DescriptorPool::decode`.
const SYNTAX_PROTO4: &[u8] = include_bytes!("fuzz_inputs/descriptor_set-syntax-proto4.bin");

test! { fn unknown_syntax_is_an_error_not_a_panic() {
    let err = decode_descriptor_set(SYNTAX_PROTO4).expect_err("proto4 is refused");
    assert!(err.contains("\"proto4\"") && err.contains("proto2 and proto3"), "{err}");
    // The same through the plugin configuration, as the filter loads it.
    let config = serde_json::json!({
        "proto_descriptor_bin": base64::engine::general_purpose::STANDARD.encode(SYNTAX_PROTO4),
        "services": ["t.S"],
    });
    let err = Transcoder::from_json(config.to_string().as_bytes()).err().expect("refused");
    assert!(err.to_string().contains("proto_descriptor_bin") && err.to_string().contains("proto4"), "{err}");
    // Every syntax prost-reflect does not know: edition files and the empty string too.
    for syntax in ["editions", "", "proto3 ", "PROTO3"] {
        let mut set = prost_types::FileDescriptorSet::decode(support::descriptor_set().as_slice()).expect("set");
        set.file[0].syntax = Some(syntax.to_string());
        let err = decode_descriptor_set(&set.encode_to_vec()).expect_err(syntax);
        assert!(err.contains("only proto2 and proto3"), "{syntax:?}: {err}");
    }
    // Known syntaxes still load.
    assert!(decode_descriptor_set(&support::descriptor_set()).is_ok());
}}
