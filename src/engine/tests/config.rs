//! Loading the plugin configuration: what Envoy accepts loads with the same
//! meaning; what is wrong is refused with the field named.

#[macro_use]
mod support;

use serde_json::json;
use support::{transcoder, try_transcoder};

test! { fn every_envoy_field_loads() {
    let t = transcoder(json!({
        "print_options": {
            "add_whitespace": true,
            "always_print_primitive_fields": true,
            "always_print_enums_as_ints": true,
            "preserve_proto_field_names": true,
            "stream_newline_delimited": true
        },
        "match_incoming_request_route": false,
        "ignored_query_parameters": ["api_key", "trace"],
        "auto_mapping": true,
        "ignore_unknown_query_parameters": true,
        "convert_grpc_status": true,
        "url_unescape_spec": "ALL_CHARACTERS_EXCEPT_SLASH",
        "query_param_unescape_plus": true,
        "match_unregistered_custom_verb": true,
        "request_validation_options": {
            "reject_unknown_method": true,
            "reject_unknown_query_parameters": true,
            "reject_binding_body_field_collisions": true
        },
        "case_insensitive_enum_parsing": true,
        "max_request_body_size": 1024,
        "max_response_body_size": 2048
    }));
    let c = t.config();
    assert!(c.print_options.add_whitespace && c.print_options.preserve_proto_field_names);
    assert!(c.auto_mapping && c.convert_grpc_status && c.case_insensitive_enum_parsing);
    assert_eq!(c.max_request_body_size, Some(1024));
    assert_eq!(c.max_response_body_size, Some(2048));
    assert_eq!(c.url_unescape_spec, transcoder::percent::UrlUnescapeSpec::AllCharactersExceptSlash);
    assert!(c.request_validation_options.reject_binding_body_field_collisions);
}}

test! { fn camel_case_names_load_too() {
    let t = transcoder(json!({
        "printOptions": { "addWhitespace": true },
        "convertGrpcStatus": true,
        "requestValidationOptions": { "rejectUnknownMethod": true },
        "urlUnescapeSpec": 2,
        "maxRequestBodySize": { "value": 10 }
    }));
    assert!(t.config().print_options.add_whitespace);
    assert!(t.config().convert_grpc_status);
    assert!(t.config().request_validation_options.reject_unknown_method);
    assert_eq!(t.config().max_request_body_size, Some(10));
}}

test! { fn unknown_fields_are_refused_by_name() {
    let err = try_transcoder(json!({ "print_options": { "add_whitespaces": true } })).err().expect("refused");
    let text = err.to_string();
    assert!(text.contains("print_options") && text.contains("add_whitespaces"), "{text}");
}}

test! { fn wrong_types_name_the_field() {
    let err = try_transcoder(json!({ "auto_mapping": "yes" })).err().expect("refused").to_string();
    assert!(err.contains("auto_mapping"), "{err}");
    let err = try_transcoder(json!({ "url_unescape_spec": "SOME" })).err().expect("refused").to_string();
    assert!(err.contains("url_unescape_spec") && err.contains("ALL_CHARACTERS"), "{err}");
}}

test! { fn services_must_exist_in_the_set() {
    let err = try_transcoder(json!({ "services": ["bookstore.v1.Nope"] })).err().expect("refused").to_string();
    assert!(err.contains("services") && err.contains("bookstore.v1.Nope") && err.contains("bookstore.v1.Bookstore"), "{err}");
    let err = try_transcoder(json!({ "services": [] })).err().expect("refused").to_string();
    assert!(err.contains("services"), "{err}");
}}

test! { fn descriptor_problems_are_explained() {
    let err = try_transcoder(json!({ "proto_descriptor_bin": "!!!" })).err().expect("refused").to_string();
    assert!(err.contains("proto_descriptor_bin") && err.contains("base64"), "{err}");
    let err = try_transcoder(json!({ "proto_descriptor_bin": "AAAA" })).err().expect("refused").to_string();
    assert!(err.contains("proto_descriptor_bin"), "{err}");
    let err = try_transcoder(json!({ "proto_descriptor": "/etc/api.pb" })).err().expect("refused").to_string();
    assert!(err.contains("proto_descriptor") && err.contains("proto_descriptor_bin"), "{err}");
    let err = transcoder::Transcoder::from_json(br#"{"services":["a.B"]}"#).err().expect("refused").to_string();
    assert!(err.contains("proto_descriptor_bin") && err.contains("required"), "{err}");
}}

test! { fn garbage_configs_are_errors_not_panics() {
    for bytes in [&b""[..], b"null", b"[]", b"{", b"\xff\xfe", b"{\"services\": 3}", b"12"] {
        assert!(transcoder::Transcoder::from_json(bytes).is_err(), "{bytes:?}");
    }
}}
