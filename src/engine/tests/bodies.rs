//! JSON bodies into protobuf: body mappings, the proto3 JSON mapping, HttpBody
//! requests, and errors that name the field.

#![recursion_limit = "256"]
#[macro_use]
mod support;

use serde_json::json;
use support::{plan, request_error, request_json, transcoder};
use transcoder::Code;

test! { fn body_star_field_and_none() {
    let t = transcoder(json!({}));
    assert_eq!(
        request_json(&t, "POST", "/api/v1/echo/hi/post", r#"{"query": "12"}"#),
        json!({"request": "hi", "query": "12"})
    );
    assert_eq!(
        request_json(&t, "POST", "/v1/shelves", r#"{"id": 5, "theme": "Poetry"}"#),
        json!({"shelf": {"id": "5", "theme": "Poetry"}})
    );
    assert_eq!(
        request_json(&t, "POST", "/v1/shelves/2/books", r#"{"title": "T", "author": {"name": "A", "born": 1950}}"#),
        json!({"shelf": "2", "book": {"title": "T", "author": {"name": "A", "born": 1950}}})
    );
    // A body on a route without a body mapping is the whole message, as in
    // Envoy's transcoder (no `body:` and `body: "*"` are the same to it); the
    // body's shelf wins over the path's, as its request weaver decides.
    assert_eq!(request_json(&t, "GET", "/v1/shelves/4", r#"{"shelf": 9}"#), json!({"shelf": "9"}));
    assert_eq!(request_json(&t, "GET", "/v1/shelves/4", r#"{"theme": 9}"#), json!({"shelf": "4"}));
    assert_eq!(request_error(&t, "GET", "/v1/shelves/4", r#"{"shelf": "x"}"#).code, Code::InvalidArgument);
    // An empty body is an empty message; on `body: "shelf"` it sets the field to
    // an empty message, as Envoy does.
    assert_eq!(request_json(&t, "POST", "/api/v1/echo/x/post", ""), json!({"request": "x"}));
    assert_eq!(request_json(&t, "POST", "/v1/shelves", ""), json!({"shelf": {}}));
    // Whitespace alone is not an empty body but invalid JSON, as for Envoy.
    for (method, path) in [("POST", "/v1/shelves"), ("POST", "/v1/types:echo"), ("PUT", "/v1/types/4")] {
        let err = request_error(&t, method, path, "  \n ");
        assert_eq!(err.code, Code::InvalidArgument, "{path}");
    }
}}

test! { fn unknown_body_fields_are_ignored_like_envoy() {
    let t = transcoder(json!({}));
    assert_eq!(
        request_json(&t, "POST", "/v1/types:echo", r#"{"nope": 1, "int32Value": 2, "nested": {"x": [1], "name": "n"}}"#),
        json!({"int32Value": 2, "nested": {"name": "n"}})
    );
}}

test! { fn the_whole_proto3_json_mapping_round_trips() {
    let t = transcoder(json!({}));
    let all = json!({
        "doubleValue": 1.5, "floatValue": "Infinity", "int32Value": -3, "int64Value": "-9223372036854775808",
        "uint32Value": 4294967295u32, "uint64Value": "18446744073709551615", "sint32Value": -5, "sint64Value": "-6",
        "fixed32Value": 7, "fixed64Value": "8", "sfixed32Value": -9, "sfixed64Value": "-10",
        "boolValue": true, "stringValue": "ü\u{1F600}", "bytesValue": "AAEC/w==", "color": "BLUE",
        "nested": {"name": "n", "count": 2, "child": {"name": "c"}},
        "repeatedInt32": [1, 2], "repeatedString": ["a"], "repeatedColor": ["RED", "GREEN"],
        "repeatedNested": [{"name": "x"}], "repeatedInt64": ["1", "-2"],
        "stringMap": {"k": "v"}, "int32Map": {"-1": "m"}, "int64Map": {"5": {"name": "five"}},
        "boolMap": {"true": "yes"}, "colorMap": {"c": "RED"},
        "choiceNested": {"name": "oneof"},
        "optionalInt32": 0, "optionalString": "",
        "timestamp": "1972-01-01T10:00:20.021Z", "duration": "-1.000340012s", "fieldMask": "fooBar,baz.qux",
        "structValue": {"a": [1.5, "two", null, {"b": false}]}, "value": "text", "listValue": [-2.5, {"x": null}],
        "any": {"@type": "type.googleapis.com/bookstore.v1.Shelf", "id": "1", "theme": "t"},
        "empty": {},
        "int32Wrapper": 0, "int64Wrapper": "64", "uint32Wrapper": 32, "uint64Wrapper": "65",
        "floatWrapper": 1.25, "doubleWrapper": 2.5, "boolWrapper": false, "stringWrapper": "", "bytesWrapper": "Yg==",
        "repeatedTimestamp": ["2020-01-01T00:00:00Z"]
    });
    let got = request_json(&t, "POST", "/v1/types:echo", &all.to_string());
    assert_eq!(got, all);
    // Original proto field names are accepted on input too.
    let got = request_json(&t, "POST", "/v1/types:echo", r#"{"int64_value": 5, "repeated_string": ["x"], "choice_int": 3}"#);
    assert_eq!(got, json!({"int64Value": "5", "repeatedString": ["x"], "choiceInt": 3}));
}}

test! { fn the_body_wins_over_bindings_it_sets_under_the_proto_name() {
    // Envoy's RequestWeaver: a binding is dropped when the body holds the same
    // field under its proto name; otherwise it is merged after the body.
    let t = transcoder(json!({}));
    assert_eq!(
        request_json(&t, "POST", "/api/v1/echo/path/post", r#"{"request": "body", "query": 1}"#),
        json!({"request": "body", "query": "1"})
    );
    assert_eq!(request_json(&t, "POST", "/v1/types:echo?int32Value=3", r#"{"int32_value": 7}"#), json!({"int32Value": 7}));
    assert_eq!(request_json(&t, "POST", "/v1/types:echo?int32Value=3", r#"{"int32_value": 0}"#), json!({}));
    // The JSON-name spelling or a null does not stop the binding, which then wins.
    assert_eq!(request_json(&t, "POST", "/v1/types:echo?int32Value=3", r#"{"int32Value": 7}"#), json!({"int32Value": 3}));
    assert_eq!(request_json(&t, "POST", "/v1/types:echo?int32Value=3", r#"{"int32_value": null}"#), json!({"int32Value": 3}));
    // Inside messages, by proto names all the way; fields the body lacks are added.
    assert_eq!(
        request_json(&t, "POST", "/v1/types:echo?nested.count=3&nested.name=q", r#"{"nested": {"name": "b"}}"#),
        json!({"nested": {"name": "b", "count": 3}})
    );
    assert_eq!(request_json(&t, "PUT", "/v1/types/5?nested.name=q", r#"{"name": "b"}"#), json!({"int64Value": "5", "nested": {"name": "b"}}));
    assert_eq!(
        request_json(&t, "PATCH", "/v1/shelves/1/books/2", r#"{"name": "shelves/9/books/9"}"#),
        json!({"book": {"name": "shelves/9/books/9"}})
    );
    // Repeated fields: the URL's values come after the body's.
    assert_eq!(
        request_json(&t, "POST", "/v1/types:echo?repeatedInt32=1&repeatedInt32=5", r#"{"repeated_int32": [2, 3]}"#),
        json!({"repeatedInt32": [2, 3, 1, 5]})
    );
}}

test! { fn a_binding_cannot_set_a_oneof_the_body_set() {
    let t = transcoder(json!({}));
    for (query, body) in [
        ("choiceInt=3", r#"{"choiceString": "x"}"#),
        ("choiceInt=3", r#"{"choiceInt": 4}"#),
        ("choiceInt=3", r#"{"choiceNested": {}}"#),
        ("choiceNested.name=3", r#"{"choiceInt": 5}"#),
        ("optionalInt32=1", r#"{"optionalInt32": 2}"#),
    ] {
        let err = request_error(&t, "POST", &format!("/v1/types:echo?{query}"), body);
        assert_eq!(err.code, Code::InvalidArgument, "{query} {body}");
        assert!(err.message.contains("oneof"), "{query} {body}: {}", err.message);
    }
    // No conflict: the body sets the same member under its proto name (the body
    // wins), the member inside a message the body opened, or a null.
    assert_eq!(request_json(&t, "POST", "/v1/types:echo?choiceInt=3", r#"{"choice_int": 4}"#), json!({"choiceInt": 4}));
    assert_eq!(
        request_json(&t, "POST", "/v1/types:echo?choiceNested.name=3", r#"{"choice_nested": {"count": 1}}"#),
        json!({"choiceNested": {"name": "3", "count": 1}})
    );
    assert_eq!(request_json(&t, "POST", "/v1/types:echo?choiceInt=3", r#"{"choiceString": null}"#), json!({"choiceInt": 3}));
}}

test! { fn collisions_are_rejected_only_where_the_body_wins() {
    let strict = transcoder(json!({"request_validation_options": {"reject_binding_body_field_collisions": true}}));
    let err = request_error(&strict, "POST", "/api/v1/echo/path/post", r#"{"request": "body"}"#);
    assert_eq!(err.code, Code::InvalidArgument);
    assert!(err.message.contains("request") && err.message.contains("conflicts"), "{}", err.message);
    // The same value twice is no collision.
    assert_eq!(
        request_json(&strict, "POST", "/api/v1/echo/same/post", r#"{"request": "same"}"#),
        json!({"request": "same"})
    );
    // A binding inside the body field collides too.
    let err = request_error(&strict, "PATCH", "/v1/shelves/1/books/2", r#"{"name": "shelves/9/books/9"}"#);
    assert!(err.message.contains("book.name"), "{}", err.message);
    // Where the binding is merged (JSON-name key, repeated field) there is no collision.
    assert_eq!(request_json(&strict, "POST", "/v1/types:echo?int32Value=3", r#"{"int32Value": 7}"#), json!({"int32Value": 3}));
    assert_eq!(
        request_json(&strict, "POST", "/v1/types:echo?repeatedInt32=1", r#"{"repeated_int32": [2]}"#),
        json!({"repeatedInt32": [2, 1]})
    );
}}

test! { fn http_body_requests_carry_the_raw_body() {
    let t = transcoder(json!({}));
    let plan = plan(&t, "PUT", "/v1/shelves/1/books/2/cover");
    let bytes = t.request_message(&plan, Some("image/png"), b"\x89PNG\0raw").expect("transcodes");
    let decoded = prost_reflect::DynamicMessage::decode(
        support::message("bookstore.v1.UploadBookCoverRequest"),
        bytes.as_slice(),
    )
    .expect("decodes");
    assert_eq!(
        serde_json::to_value(&decoded).expect("prints"),
        json!({"name": "shelves/1/books/2", "cover": {"contentType": "image/png", "data": "iVBORwByYXc="}})
    );
}}

test! { fn malformed_bodies_are_invalid_argument_naming_the_field() {
    let t = transcoder(json!({}));
    for (body, needles) in [
        (r#"{"title": "T", "author": {"born": "old"}}"#, &["author.born"][..]),
        (r#"{"title": 5}"#, &["title"]),
        (r#"{"genre": "POETRY"}"#, &["genre", "POETRY"]),
        (r#"{"title": "T""#, &["line 1"]),
        (r#"{"title": "T"} trailing"#, &["trailing"]),
        (r#"[1, 2]"#, &["invalid"]),
        (r#"{"published": "yesterday"}"#, &["published"]),
    ] {
        let err = request_error(&t, "POST", "/v1/shelves/1/books", body);
        assert_eq!(err.code, Code::InvalidArgument, "{body}");
        assert_eq!(err.http_status(), 400);
        for needle in needles {
            assert!(err.message.contains(needle), "{body}: {}", err.message);
        }
    }
    let err = request_error(&t, "POST", "/v1/types:echo", r#"{"choiceString": "a", "choiceInt": 1}"#);
    assert!(err.message.contains("oneof"), "{}", err.message);
    let err = request_error(&t, "POST", "/v1/types:echo", r#"{"int32Value": 3000000000}"#);
    assert!(err.message.contains("int32Value"), "{}", err.message);
    let err = request_error(&t, "POST", "/v1/types:echo", r#"{"any": {"@type": "type.googleapis.com/nope.Nope"}}"#);
    assert!(err.message.contains("any"), "{}", err.message);
}}

test! { fn deep_nesting_is_an_error_not_a_crash() {
    let t = transcoder(json!({}));
    let deep = "{\"child\":".repeat(5000) + &"}".repeat(5000);
    let err = request_error(&t, "PUT", "/v1/types/1", &deep);
    assert_eq!(err.code, Code::InvalidArgument);
}}

test! { fn float_strings_and_timestamps_are_read_as_protobuf_reads_them() {
    let t = transcoder(json!({}));
    // Exact special spellings and whole strtod numbers (hexadecimal too) are fine.
    assert_eq!(
        request_json(&t, "POST", "/v1/types:echo", r#"{"doubleValue": "-Infinity", "floatValue": "0x10", "repeatedNested": [{"name": "x"}]}"#),
        json!({"doubleValue": "-Infinity", "floatValue": 16.0, "repeatedNested": [{"name": "x"}]})
    );
    // What protobuf refuses and Rust's float parser would take.
    for body in [
        r#"{"doubleValue": "nan"}"#,
        r#"{"doubleValue": "inf"}"#,
        r#"{"doubleValue": "1e400"}"#,
        r#"{"floatValue": "3.5e38"}"#,
        r#"{"doubleWrapper": "infinity"}"#,
        r#"{"timestamp": "2020-01-01T00:00:00.1234567891Z"}"#,
        r#"{"repeatedTimestamp": ["2020-01-01T00:00:00Z", "2020-01-01T00:00:00.0000000001Z"]}"#,
    ] {
        let err = request_error(&t, "POST", "/v1/types:echo", body);
        assert_eq!(err.code, Code::InvalidArgument, "{body}");
        let field = body.split('"').nth(1).unwrap_or_default();
        assert!(err.message.contains(field), "{body}: {}", err.message);
    }
}}
