//! Which method a REST call reaches, and what the URL binds.

#[macro_use]
mod support;

use serde_json::json;
use support::{grpc_path, request_json, transcoder};
use transcoder::{Code, RequestOutcome};

test! { fn http_methods_and_templates_route() {
    let t = transcoder(json!({}));
    assert_eq!(grpc_path(&t, "GET", "/v1/shelves"), "/bookstore.v1.Bookstore/ListShelves");
    assert_eq!(grpc_path(&t, "POST", "/v1/shelves"), "/bookstore.v1.Bookstore/CreateShelf");
    assert_eq!(grpc_path(&t, "GET", "/v1/shelves/7"), "/bookstore.v1.Bookstore/GetShelf");
    assert_eq!(grpc_path(&t, "DELETE", "/v1/shelves/7"), "/bookstore.v1.Bookstore/DeleteShelf");
    assert_eq!(grpc_path(&t, "PATCH", "/v1/shelves/1/books/2"), "/bookstore.v1.Bookstore/UpdateBook");
    assert_eq!(grpc_path(&t, "PUT", "/v1/shelves/1/books/2/cover"), "/bookstore.v1.Bookstore/UploadBookCover");
    assert_eq!(grpc_path(&t, "SEARCH", "/v1/shelves/1/books"), "/bookstore.v1.Bookstore/ListBooks");
    assert_eq!(grpc_path(&t, "GET", "/api/v1/echo/hello/get?query=666"), "/echo.v1.EchoService/EchoGet");
}}

test! { fn custom_verbs_and_literals_beat_wildcards() {
    let t = transcoder(json!({}));
    assert_eq!(grpc_path(&t, "POST", "/v1/shelves/1/books/2:archive"), "/bookstore.v1.Bookstore/ArchiveBook");
    assert_eq!(grpc_path(&t, "GET", "/v1/shelves/1/books/2/title"), "/bookstore.v1.Bookstore/GetBookTitle");
    assert_eq!(grpc_path(&t, "GET", "/v1/shelves/1/books/2/cover"), "/bookstore.v1.Bookstore/GetBookCover");
    assert_eq!(grpc_path(&t, "GET", "/v1/shelves/1/books/2"), "/bookstore.v1.Bookstore/GetBook");
    assert_eq!(grpc_path(&t, "POST", "/v1/types:echo"), "/bookstore.v1.Bookstore/EchoTypes");
}}

test! { fn nested_and_multi_segment_variables_bind() {
    let t = transcoder(json!({}));
    assert_eq!(request_json(&t, "GET", "/v1/shelves/1/books/2", ""), json!({"name": "shelves/1/books/2"}));
    assert_eq!(request_json(&t, "GET", "/v1/archive/a/b/c", ""), json!({"name": "a/b/c"}));
    assert_eq!(
        request_json(&t, "PATCH", "/v1/shelves/1/books/2", r#"{"title":"T"}"#),
        json!({"book": {"name": "shelves/1/books/2", "title": "T"}})
    );
    assert_eq!(
        request_json(&t, "GET", "/v1/types/hello/world", ""),
        json!({"stringValue": "hello", "nested": {"name": "world"}})
    );
}}

test! { fn path_variables_are_percent_decoded() {
    let t = transcoder(json!({}));
    // Multi-byte UTF-8 in a single-segment variable.
    assert_eq!(
        request_json(&t, "GET", "/api/v1/echo/%E4%BD%A0%E5%A5%BD%20x/get", ""),
        json!({"request": "你好 x"})
    );
    // A single-segment variable decodes %2F; a multi-segment one keeps reserved escapes by default.
    assert_eq!(request_json(&t, "GET", "/api/v1/echo/a%2Fb/get", ""), json!({"request": "a/b"}));
    assert_eq!(request_json(&t, "GET", "/v1/archive/a%2Fb/c%20d", ""), json!({"name": "a%2Fb/c d"}));
    let all = transcoder(json!({"url_unescape_spec": "ALL_CHARACTERS"}));
    assert_eq!(request_json(&all, "GET", "/v1/archive/a%2Fb/c", ""), json!({"name": "a/b/c"}));
    // Bytes that are not UTF-8 cannot become a proto string.
    match t.route_request("GET", "/api/v1/echo/%FF/get") {
        RequestOutcome::Reject(status) => {
            assert_eq!(status.code, Code::InvalidArgument);
            assert!(status.message.contains("request"), "{}", status.message);
        }
        other => panic!("{other:?}"),
    }
}}

test! { fn unknown_routes_pass_through_unless_rejected() {
    let t = transcoder(json!({}));
    assert!(matches!(t.route_request("GET", "/nope"), RequestOutcome::PassThrough(_)));
    assert!(matches!(t.route_request("PUT", "/v1/shelves"), RequestOutcome::PassThrough(_)));
    let strict = transcoder(json!({"request_validation_options": {"reject_unknown_method": true}}));
    match strict.route_request("GET", "/nope") {
        RequestOutcome::Reject(status) => {
            assert_eq!(status.code, Code::NotFound);
            assert_eq!(status.http_status(), 404);
            assert!(status.message.contains("/nope"));
        }
        other => panic!("{other:?}"),
    }
}}

test! { fn auto_mapping_routes_unannotated_methods() {
    let t = transcoder(json!({}));
    assert!(matches!(
        t.route_request("POST", "/bookstore.v1.Bookstore/Unannotated"),
        RequestOutcome::PassThrough(_)
    ));
    let auto = transcoder(json!({"auto_mapping": true}));
    assert_eq!(
        request_json(&auto, "POST", "/bookstore.v1.Bookstore/Unannotated", r#"{"id":"4","theme":"x"}"#),
        json!({"id": "4", "theme": "x"})
    );
    // Annotated methods keep only their annotations.
    assert!(matches!(
        auto.route_request("POST", "/bookstore.v1.Bookstore/GetShelf"),
        RequestOutcome::PassThrough(_)
    ));
}}

test! { fn query_parameters_bind_every_kind() {
    let t = transcoder(json!({}));
    let got = request_json(
        &t,
        "GET",
        "/v1/shelves/3/books?filter.author=Ann&filter.genre=HISTORY&pageSize=20&tags=a&tags=b&labels[lang]=en&labels[x%20y]=z",
        "",
    );
    assert_eq!(
        got,
        json!({
            "shelf": "3",
            "filter": {"author": "Ann", "genre": "HISTORY"},
            "pageSize": 20,
            "tags": ["a", "b"],
            "labels": {"lang": "en", "x y": "z"}
        })
    );
    let got = request_json(
        &t,
        "GET",
        "/v1/types/s/n?int64Value=-9007199254740993&uint64_value=18446744073709551615&bool_value=true\
         &double_value=NaN&float_value=-Infinity&color=2&repeated_color=RED&repeated_color=3\
         &bytes_value=aGk-&timestamp=2020-01-02T03:04:05.5Z&duration=1.5s&field_mask=a.b,cD\
         &int32_wrapper=5&bool_wrapper=false&string_wrapper=w&optional_int32=0&int32_map[7]=seven",
        "",
    );
    assert_eq!(
        got,
        json!({
            "stringValue": "s", "nested": {"name": "n"},
            "int64Value": "-9007199254740993", "uint64Value": "18446744073709551615", "boolValue": true,
            "doubleValue": "NaN", "floatValue": "-Infinity", "color": "GREEN", "repeatedColor": ["RED", "BLUE"],
            "bytesValue": "aGk+", "timestamp": "2020-01-02T03:04:05.500Z", "duration": "1.500s",
            "fieldMask": "a.b,cD", "int32Wrapper": 5, "boolWrapper": false, "stringWrapper": "w",
            "optionalInt32": 0, "int32Map": {"7": "seven"}
        })
    );
}}

test! { fn query_plus_is_a_space_only_when_asked() {
    let t = transcoder(json!({}));
    assert_eq!(request_json(&t, "GET", "/v1/shelves/1/books?filter.author=a+b%2Bc", "")["filter"]["author"], "a+b+c");
    let plus = transcoder(json!({"query_param_unescape_plus": true}));
    assert_eq!(request_json(&plus, "GET", "/v1/shelves/1/books?filter.author=a+b%2Bc", "")["filter"]["author"], "a b+c");
}}

test! { fn unknown_query_parameters_follow_the_options() {
    let t = transcoder(json!({}));
    assert!(matches!(t.route_request("GET", "/v1/shelves/1?foo=bar"), RequestOutcome::PassThrough(_)));
    let ignored = transcoder(json!({"ignored_query_parameters": ["foo"]}));
    assert_eq!(request_json(&ignored, "GET", "/v1/shelves/1?foo=bar", ""), json!({"shelf": "1"}));
    let lenient = transcoder(json!({"ignore_unknown_query_parameters": true}));
    assert_eq!(request_json(&lenient, "GET", "/v1/shelves/1?foo=bar&x.y=1", ""), json!({"shelf": "1"}));
    let strict = transcoder(json!({"request_validation_options": {"reject_unknown_query_parameters": true}}));
    match strict.route_request("GET", "/v1/shelves/1?foo=bar") {
        RequestOutcome::Reject(status) => {
            assert_eq!(status.http_status(), 400);
            assert!(status.message.contains("`foo`"), "{}", status.message);
        }
        other => panic!("{other:?}"),
    }
}}

test! { fn bad_query_values_name_the_parameter() {
    let t = transcoder(json!({}));
    for (query, needle) in [
        ("pageSize=ten", "pageSize"),
        ("filter.genre=POETRY", "filter.genre"),
        ("filter=x", "filter"),
        ("labels=x", "labels[key]"),
        ("tags[a]=b", "not a map"),
    ] {
        let err = support::request_error(&t, "GET", &format!("/v1/shelves/1/books?{query}"), "");
        assert_eq!(err.code, Code::InvalidArgument, "{query}");
        assert!(err.message.contains(needle), "{query}: {}", err.message);
    }
    let err = support::request_error(&t, "GET", "/v1/shelves/abc", "");
    assert!(err.message.contains("shelf") && err.message.contains("abc"), "{}", err.message);
}}

test! { fn enums_parse_case_insensitively_when_asked() {
    let t = transcoder(json!({}));
    let err = support::request_error(&t, "GET", "/v1/shelves/1/books?filter.genre=history", "");
    assert_eq!(err.code, Code::InvalidArgument);
    let ci = transcoder(json!({"case_insensitive_enum_parsing": true}));
    assert_eq!(request_json(&ci, "GET", "/v1/shelves/1/books?filter.genre=history", "")["filter"]["genre"], "HISTORY");
    assert_eq!(
        request_json(&ci, "POST", "/v1/types:echo", r#"{"color":"blue","repeatedColor":["red"],"colorMap":{"k":"Green"},"nested":{"name":"x"}}"#),
        json!({"color": "BLUE", "repeatedColor": ["RED"], "colorMap": {"k": "GREEN"}, "nested": {"name": "x"}})
    );
}}

test! { fn grpc_content_types_follow_envoys_rule() {
    // Envoy's Grpc::Common::hasGrpcContentType: such requests pass through untouched.
    for grpc in ["application/grpc", "application/grpc+proto", "application/grpc+json"] {
        assert!(transcoder::is_grpc_content_type(grpc), "{grpc}");
    }
    // gRPC-Web and look-alikes are transcoded like any other request, as native does.
    for other in ["application/grpc-web", "application/grpc-web+proto", "application/grpcx", "application/json", "", "application/grp"] {
        assert!(!transcoder::is_grpc_content_type(other), "{other}");
    }
}}

test! { fn url_values_parse_like_envoys_transcoder() {
    let t = transcoder(json!({}));
    let q = |query: &str| request_json(&t, "GET", &format!("/v1/types/s/n?{query}"), "");
    let err = |query: &str| support::request_error(&t, "GET", &format!("/v1/types/s/n?{query}"), "");
    // Booleans as absl::SimpleAtob: any letter case, t/f, yes/no, y/n, 1/0.
    for (raw, value) in [("tRuE", true), ("yes", true), ("Y", true), ("1", true), ("no", false), ("N", false), ("F", false)] {
        let got = q(&format!("boolValue={raw}&boolWrapper={raw}"));
        assert_eq!(got.get("boolValue").cloned().unwrap_or(json!(false)), json!(value), "{raw}");
        assert_eq!(got["boolWrapper"], json!(value), "{raw}");
    }
    for raw in ["on", "off", "2", "", "truth"] {
        assert!(err(&format!("boolValue={raw}")).message.contains("boolValue"), "{raw}");
    }
    // Floats as protobuf's DataPiece: exact NaN/Infinity spellings, strtod numbers
    // (hexadecimal too), nothing that overflows the type.
    assert_eq!(q("doubleValue=0x10&floatValue=%2B.5")["doubleValue"], json!(16.0));
    assert_eq!(q("floatValue=%2B.5")["floatValue"], json!(0.5));
    assert_eq!(q("doubleValue=-Infinity")["doubleValue"], json!("-Infinity"));
    let p = support::plan(&t, "GET", "/v1/types/s/n?doubleWrapper=NaN&floatWrapper=Infinity");
    let bytes = t.request_message(&p, None, b"").expect("transcodes");
    let all = prost_reflect::DynamicMessage::decode(support::message("bookstore.v1.AllTypes"), bytes.as_slice()).expect("decodes");
    let inner = |field: &str| all.get_field_by_name(field).and_then(|v| v.as_message().and_then(|m| m.get_field_by_name("value")).map(|v| v.into_owned()));
    assert!(inner("double_wrapper").and_then(|v| v.as_f64()).is_some_and(f64::is_nan));
    assert_eq!(inner("float_wrapper").and_then(|v| v.as_f32()), Some(f32::INFINITY));
    for query in ["doubleValue=inf", "doubleValue=nan", "doubleValue=-NaN", "doubleValue=1.8e308", "floatValue=3.5e38",
                  "floatValue=3.4028235e38", "doubleValue=1_0", "doubleValue=%201", "doubleWrapper=infinity"] {
        assert_eq!(err(query).code, Code::InvalidArgument, "{query}");
    }
    // Enum numbers: only declared ones in a URL (a body takes any).
    assert_eq!(q("color=2&repeatedColor=0")["color"], json!("GREEN"));
    assert!(err("color=7").message.contains("color"));
    assert!(err("repeatedColor=1&repeatedColor=9").message.contains("repeatedColor"));
    // A google.protobuf.Value from the URL is JSON when it reads as JSON (as in
    // grpc-gateway), else a string (as in Envoy, which makes every one a string).
    assert_eq!(q("value=true")["value"], json!(true));
    assert_eq!(q("value=hello")["value"], json!("hello"));
    // Through a repeated message: one element, later parameters overwrite.
    assert_eq!(q("repeatedNested.name=a&repeatedNested.name=b&repeatedNested.count=3")["repeatedNested"],
        json!([{"name": "b", "count": 3}]));
}}

test! { fn odd_query_strings_are_read_like_envoy() {
    let t = transcoder(json!({}));
    // Empty names are skipped.
    assert_eq!(request_json(&t, "GET", "/v1/types/s/n?=&==&&=x&int32Value=2", "")["int32Value"], json!(2));
    // A name that is not UTF-8 names no field: the request passes through.
    assert!(matches!(t.route_request("GET", "/v1/types/s/n?%FF=1"), RequestOutcome::PassThrough(_)));
    // A value that is not UTF-8 only matters when it binds.
    assert!(matches!(t.route_request("GET", "/v1/types/s/n?zzz=%FF"), RequestOutcome::PassThrough(_)));
    let ignored = transcoder(json!({"ignored_query_parameters": ["key"]}));
    assert!(matches!(ignored.route_request("GET", "/v1/shelves/1?key=%FF"), RequestOutcome::Transcode(_)));
    match t.route_request("GET", "/v1/types/s/n?stringValue=%C3%28") {
        RequestOutcome::Reject(status) => assert!(status.message.contains("stringValue"), "{}", status.message),
        other => panic!("expected a rejection, got {other:?}"),
    }
}}
