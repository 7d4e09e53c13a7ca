//! `rgp openapi`, run as the real binary; validated by openapi-spec-validator when the
//! repository's .venv has it (make test-cli installs it; tests/cli validates too).

mod common;

use common::*;
use serde_json::{json, Value};

fn example_document(dir: &std::path::Path) -> (std::path::PathBuf, Value, Run) {
    let set = build_example(dir, "set.pb");
    let out = dir.join("openapi.json");
    let run = rgp(&["openapi".as_ref(), set.as_os_str(), "-o".as_ref(), out.as_os_str()]).ok();
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    (out, doc, run)
}

#[test]
fn openapi_paths_parameters_and_bodies() {
    let dir = scratch("openapi_paths");
    let (_, doc, run) = example_document(&dir);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/shelves",
        "/v1/shelves/{shelf}/books",
        "/v1/{name}",
        "/v1/{book.name}",
        "/v1/{name}:archive",
        "/v1/archive/{name}",
        "/v1/types/{string_value}/{nested.name}",
        "/api/v1/echo/{request}/get",
    ] {
        assert!(paths.contains_key(path), "{path} missing from {:?}", paths.keys());
    }
    // SEARCH has no OpenAPI 3.0 operation: said, and left out.
    assert!(run.stderr.contains("note: SEARCH /v1/shelves/{shelf}/books"), "{run:#?}");

    let list_books = &doc["paths"]["/v1/shelves/{shelf}/books"]["get"];
    assert_eq!(list_books["operationId"], "bookstore_v1_Bookstore_ListBooks");
    let params = list_books["parameters"].as_array().unwrap();
    assert_eq!(
        params[0],
        json!({"name": "shelf", "in": "path", "required": true, "schema": {"type": "string", "format": "int64"}})
    );
    let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
    // Non-path fields of a GET are query parameters (proto names, dotted into messages); maps have no form.
    assert_eq!(names, ["shelf", "filter.author", "filter.genre", "page_size", "tags"]);
    assert_eq!(params[4]["schema"], json!({"type": "array", "items": {"type": "string"}}));

    // body: "book" -> the Book schema; body "*" -> the request message; HttpBody -> raw.
    let create = &doc["paths"]["/v1/shelves/{shelf}/books"]["post"];
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/bookstore.v1.Book"
    );
    assert!(create.get("parameters").unwrap().as_array().unwrap().iter().all(|p| p["name"] != "book"));
    let archive = &doc["paths"]["/v1/{name}:archive"]["post"];
    assert_eq!(
        archive["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/bookstore.v1.ArchiveBookRequest"
    );
    assert!(archive.get("parameters").unwrap().as_array().unwrap().iter().all(|p| p["in"] == "path"));
    let upload = &doc["paths"]["/v1/{name}/cover"]["put"];
    assert_eq!(upload["requestBody"]["content"]["*/*"]["schema"]["format"], "binary");
    assert_eq!(
        doc["paths"]["/v1/{name}/cover"]["get"]["responses"]["200"]["content"]["*/*"]["schema"]["format"],
        "binary"
    );
    // response_body: "title" -> a string.
    assert_eq!(
        doc["paths"]["/v1/{name}/title"]["get"]["responses"]["200"]["content"]["application/json"]["schema"],
        json!({"type": "string"})
    );
    // Errors are google.rpc.Status.
    assert_eq!(
        list_books["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/google.rpc.Status"
    );
    assert_eq!(
        doc["paths"]["/v1/{name}"]["get"]["parameters"][0]["description"],
        "Matches the path pattern `shelves/*/books/*`; its slashes are sent as they are, not percent-encoded."
    );
}

#[test]
fn openapi_schemas_follow_the_proto3_json_mapping() {
    let dir = scratch("openapi_schemas");
    let (_, doc, _) = example_document(&dir);
    let schemas = &doc["components"]["schemas"];
    let all = &schemas["bookstore.v1.AllTypes"]["properties"];
    let expect = [
        ("int64Value", json!({"type": "string", "format": "int64"})),
        ("uint64Value", json!({"type": "string", "format": "uint64"})),
        ("int32Value", json!({"type": "integer", "format": "int32"})),
        ("bytesValue", json!({"type": "string", "format": "byte"})),
        ("boolValue", json!({"type": "boolean"})),
        ("color", json!({"$ref": "#/components/schemas/bookstore.v1.Color"})),
        ("repeatedInt64", json!({"type": "array", "items": {"type": "string", "format": "int64"}})),
        ("stringMap", json!({"type": "object", "additionalProperties": {"type": "string"}})),
        (
            "int64Map",
            json!({"type": "object", "additionalProperties": {"$ref": "#/components/schemas/bookstore.v1.Nested"}}),
        ),
        ("timestamp", json!({"type": "string", "format": "date-time", "example": "1972-01-01T10:00:20.021Z"})),
        ("structValue", json!({"type": "object", "additionalProperties": true})),
        ("listValue", json!({"type": "array", "items": {}})),
        ("int64Wrapper", json!({"type": "string", "format": "int64", "nullable": true})),
        ("empty", json!({"type": "object", "additionalProperties": false})),
    ];
    for (name, schema) in expect {
        assert_eq!(all[name], schema, "{name}");
    }
    assert_eq!(all["duration"]["type"], "string");
    assert_eq!(all["fieldMask"]["type"], "string");
    assert_eq!(all["any"]["required"], json!(["@type"]));
    assert_eq!(schemas["bookstore.v1.Color"]["enum"], json!(["COLOR_UNSPECIFIED", "RED", "GREEN", "BLUE"]));
    // Recursive messages are one component that refers to itself.
    assert_eq!(
        schemas["bookstore.v1.Nested"]["properties"]["child"]["$ref"],
        "#/components/schemas/bookstore.v1.Nested"
    );
    assert_eq!(schemas["google.rpc.Status"]["properties"]["code"]["type"], "integer");
    assert_eq!(schemas["google.rpc.Status"]["properties"]["details"]["type"], "array");
}

#[test]
fn openapi_is_reproducible_and_honours_options() {
    let dir = scratch("openapi_options");
    let set = build_example(&dir, "set.pb");
    let a = rgp(&["openapi".as_ref(), set.as_os_str()]).ok();
    let b = rgp(&["openapi".as_ref(), set.as_os_str()]).ok();
    assert_eq!(a.stdout, b.stdout);
    let echo = rgp(&[
        "openapi".as_ref(),
        set.as_os_str(),
        "--services".as_ref(),
        "echo.v1.EchoService".as_ref(),
        "--title".as_ref(),
        "Echo".as_ref(),
        "--proto-names".as_ref(),
    ])
    .ok();
    let doc: Value = serde_json::from_str(&echo.stdout).unwrap();
    assert_eq!(doc["info"]["title"], "Echo");
    assert_eq!(doc["paths"].as_object().unwrap().len(), 5);
    assert!(doc["components"]["schemas"].get("bookstore.v1.Book").is_none());
    let all = rgp(&["openapi".as_ref(), set.as_os_str(), "--proto-names".as_ref()]).ok();
    let doc: Value = serde_json::from_str(&all.stdout).unwrap();
    assert!(doc["components"]["schemas"]["bookstore.v1.AllTypes"]["properties"].get("int64_value").is_some());
}

#[test]
fn openapi_refuses_broken_sets() {
    let dir = scratch("openapi_broken");
    let set = build_fixture(&dir, "check/fields.proto");
    let run = rgp(&["openapi".as_ref(), set.as_os_str()]).code(1);
    assert!(run.stderr.contains("no document written"), "{run:#?}");
    assert_eq!(run.stdout, "");
}

#[test]
fn openapi_validates_with_openapi_spec_validator() {
    let python = root().join(".venv/bin/python");
    let has_validator = python.exists()
        && std::process::Command::new(&python)
            .args(["-c", "import openapi_spec_validator"])
            .status()
            .is_ok_and(|s| s.success());
    if !has_validator {
        eprintln!("skipped: .venv has no openapi-spec-validator (make test-cli installs it and runs tests/cli)");
        return;
    }
    let dir = scratch("openapi_validate");
    let (out, _, _) = example_document(&dir);
    let status = std::process::Command::new(&python).args(["-m", "openapi_spec_validator"]).arg(&out).status().unwrap();
    assert!(status.success(), "openapi-spec-validator refused {}", out.display());
}

#[test]
fn openapi_query_parameters_of_json_valued_types() {
    let dir = scratch("openapi_query_json");
    let (_, doc, _) = example_document(&dir);
    let params = doc["paths"]["/v1/types/{string_value}/{nested.name}"]["get"]["parameters"].as_array().unwrap();
    let by_name = |name: &str| params.iter().find(|p| p["name"] == name).cloned();
    // Struct, Value and ListValue parameters are JSON documents (grpc-gateway's reading, the filter's too).
    assert_eq!(
        by_name("struct_value").unwrap()["content"]["application/json"]["schema"],
        json!({"type": "object", "additionalProperties": true})
    );
    assert_eq!(
        by_name("list_value").unwrap()["content"]["application/json"]["schema"],
        json!({"type": "array", "items": {}})
    );
    assert!(by_name("value").unwrap()["content"]["application/json"].is_object());
    assert!(params.iter().all(|p| !p["name"].as_str().unwrap().starts_with("struct_value.")), "{params:?}");
    // A FieldMask takes both spellings; Any and Empty have no query form.
    let mask = by_name("field_mask").unwrap();
    assert!(mask["schema"]["description"].as_str().unwrap().contains("snake_case"), "{mask}");
    assert!(by_name("any").is_none() && by_name("empty").is_none());
}
