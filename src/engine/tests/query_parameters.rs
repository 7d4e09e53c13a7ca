//! Query parameters as grpc-gateway maps them where Envoy's transcoder falls
//! short (its `PopulateParameters` cases): FieldMask in proto names, Struct and
//! ListValue from JSON, fields inside well-known types, paths through scalars
//! refused, a singular field given twice in strict mode.

#[macro_use]
mod support;

use prost_reflect::DynamicMessage;
use serde_json::json;
use support::{plan, request_json, transcoder};
use transcoder::{Code, RequestOutcome, Transcoder};

const TYPES: &str = "/v1/types/s/n";

fn q(t: &Transcoder, query: &str) -> serde_json::Value {
    request_json(t, "GET", &format!("{TYPES}?{query}"), "")
}

/// The decoded request message (for what JSON printing would normalise).
fn message(t: &Transcoder, query: &str) -> DynamicMessage {
    let plan = plan(t, "GET", &format!("{TYPES}?{query}"));
    let bytes = t.request_message(&plan, None, b"").expect("request transcodes");
    DynamicMessage::decode(t.method(&plan).expect("method").input.clone(), bytes.as_slice()).expect("valid protobuf")
}

/// The 400 a query is refused with before any message is built.
fn refused(t: &Transcoder, query: &str) -> transcoder::Status {
    match t.route_request("GET", &format!("{TYPES}?{query}")) {
        RequestOutcome::Reject(status) => {
            assert_eq!(status.code, Code::InvalidArgument, "{query}: {status}");
            status
        }
        other => panic!("{query}: expected a refusal, got {other:?}"),
    }
}

fn mask_paths(t: &Transcoder, query: &str) -> Vec<String> {
    let m = message(t, query);
    let mask = m.get_field_by_name("field_mask").expect("field_mask");
    let paths = mask.as_message().and_then(|m| m.get_field_by_name("paths")).expect("paths");
    paths.as_list().expect("list").iter().map(|p| p.as_str().unwrap_or_default().to_string()).collect()
}

test! { fn field_masks_take_proto_and_json_spellings_and_go_up_in_proto_spelling() {
    let t = transcoder(json!({}));
    for query in ["fieldMask=floatValue,doubleValue", "fieldMask=float_value,double_value", "field_mask=float_value,doubleValue"] {
        assert_eq!(mask_paths(&t, query), ["float_value", "double_value"], "{query}");
    }
    assert_eq!(mask_paths(&t, "fieldMask=nested.childName,repeated_nested"), ["nested.child_name", "repeated_nested"]);
    assert_eq!(q(&t, "fieldMask=float_value,nested.name")["fieldMask"], json!("floatValue,nested.name"));
}}

test! { fn struct_list_and_value_parameters_are_json() {
    let t = transcoder(json!({}));
    assert_eq!(q(&t, "structValue=%7B%22a%22%3A%7B%22b%22%3A1%7D%7D")["structValue"], json!({"a": {"b": 1.0}}));
    assert_eq!(q(&t, "listValue=%5B1%2C%22x%22%5D")["listValue"], json!([1.0, "x"]));
    assert_eq!(q(&t, "value=%5B%5D")["value"], json!([]));
    assert_eq!(q(&t, "value=true")["value"], json!(true));
    assert_eq!(q(&t, "value=0")["value"], json!(0.0));
    assert_eq!(q(&t, "value=hello")["value"], json!("hello"));
    let err = support::request_error(&t, "GET", &format!("{TYPES}?structValue=%5B1%5D"), "");
    assert!(err.message.contains("`structValue`") && err.message.contains("JSON object"), "{err}");
    let err = support::request_error(&t, "GET", &format!("{TYPES}?listValue=nope"), "");
    assert!(err.message.contains("JSON array"), "{err}");
}}

test! { fn fields_inside_well_known_types_are_set_one_by_one() {
    let t = transcoder(json!({}));
    assert_eq!(q(&t, "int32Wrapper.value=3")["int32Wrapper"], json!(3));
    assert_eq!(q(&t, "timestamp.seconds=5")["timestamp"], json!("1970-01-01T00:00:05Z"));
    assert_eq!(q(&t, "timestamp.seconds=5&timestamp.nanos=500000000")["timestamp"], json!("1970-01-01T00:00:05.500Z"));
    assert_eq!(q(&t, "duration.seconds=-2")["duration"], json!("-2s"));
    assert_eq!(q(&t, "bytesWrapper.value=aGk")["bytesWrapper"], json!("aGk="));
    let err = support::request_error(&t, "GET", &format!("{TYPES}?int32Wrapper.value=x"), "");
    assert!(err.message.contains("`int32Wrapper.value`") && err.message.contains("32-bit"), "{err}");
}}

test! { fn paths_through_scalars_enums_and_maps_are_refused_in_every_mode() {
    for config in [json!({}), json!({"ignore_unknown_query_parameters": true})] {
        let t = transcoder(config);
        for (query, needle) in [
            ("floatValue.nested=test", "`floatValue` is a float field"),
            ("float_value.nested=test", "`float_value` is a float field"),
            ("color.nested=x", "`color` is an enum"),
            ("repeatedColor.nested=x", "`repeatedColor` is an enum"),
            ("nested.name.x=1", "`nested.name` is a string field"),
            ("stringMap.a=1", "`stringMap` is a map"),
            ("structValue.a=1", "`structValue` is a google.protobuf.Struct"),
            ("repeatedTimestamp.seconds=1", "repeated message field `repeatedTimestamp`"),
        ] {
            let err = refused(&t, query);
            assert!(err.message.contains(needle), "{query}: {err}");
        }
    }
    // A name that matches no field stays unknown (passed on, ignored or refused by configuration).
    let t = transcoder(json!({}));
    assert!(matches!(t.route_request("GET", &format!("{TYPES}?nope.x=1")), RequestOutcome::PassThrough(_)));
}}

test! { fn a_singular_field_given_twice_keeps_the_last_unless_strict() {
    let t = transcoder(json!({}));
    assert_eq!(q(&t, "uint64Value=1&uint64Value=2")["uint64Value"], json!("2"));
    assert_eq!(q(&t, "repeatedInt32=1&repeatedInt32=2")["repeatedInt32"], json!([1, 2]));
    let strict = transcoder(json!({"request_validation_options": {"reject_unknown_query_parameters": true}}));
    for query in ["uint64Value=1&uint64Value=2", "uint64_value=1&uint64Value=2", "stringMap[a]=1&stringMap[a]=2"] {
        let err = refused(&strict, query);
        assert!(err.message.contains("more than once"), "{query}: {err}");
    }
    assert_eq!(request_json(&strict, "GET", &format!("{TYPES}?repeatedInt32=1&repeatedInt32=2"), "")["repeatedInt32"], json!([1, 2]));
    assert_eq!(request_json(&strict, "GET", &format!("{TYPES}?stringMap[a]=1&stringMap[b]=2"), "")["stringMap"], json!({"a": "1", "b": "2"}));
}}
