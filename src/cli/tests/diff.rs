//! `rgp diff`, run as the real binary on purpose-made old and new versions of an API.

mod common;

use common::*;

fn shop(dir: &std::path::Path, version: &str) -> std::path::PathBuf {
    let out = dir.join(format!("{version}.pb"));
    let include = fixtures().join("diff").join(version);
    rgp(&[
        "build".as_ref(),
        "-I".as_ref(),
        include.as_os_str(),
        "shop/v1/shop.proto".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ])
    .ok();
    out
}

#[test]
fn diff_marks_every_kind_of_change() {
    let dir = scratch("diff_kinds");
    let (old, new) = (shop(&dir, "old"), shop(&dir, "new"));
    let run = rgp(&["diff".as_ref(), old.as_os_str(), new.as_os_str()]).code(1);
    let expected = [
        "breaking: route removed: GET /v1/items -> shop.v1.Shop/ListItems",
        "breaking: route changed: DELETE /v1/items/{id}: path variables bind [name] instead of [id]",
        "breaking: route changed: PATCH /v1/items/{id}: body \"*\" instead of \"item\"",
        "compatible: route added: GET /v2/items -> shop.v1.Shop/ListItems",
        "compatible: route added: GET /v1/items:count -> shop.v1.Shop/CountItems",
        "breaking: enum shop.v1.Color: value GREEN (2) removed",
        "compatible: enum shop.v1.Color: value YELLOW (4) added",
        "compatible: message shop.v1.GetItemRequest: field \"name\" (2) added: string",
        "breaking: message shop.v1.Item: field 2 renamed: JSON name \"title\" -> \"name\"",
        "breaking: message shop.v1.Item: field \"stock\" retyped: int32 -> string",
        "breaking: message shop.v1.Item: field \"description\" (5) removed",
        "breaking: message shop.v1.Item: field \"tags\" retyped: repeated string -> string",
        "compatible: message shop.v1.Item: field \"priceCents\" retyped with the same JSON: int64 -> sint64",
        "breaking: message shop.v1.Item: field 8 renamed: JSON name \"sku\" -> \"SKU\"",
    ];
    for line in expected {
        assert!(run.stdout.lines().any(|l| l == line), "missing {line}\n{run:#?}");
    }
    assert_eq!(run.stdout.lines().count(), expected.len(), "{run:#?}");
    assert!(run.stderr.contains("9 breaking, 5 compatible change(s)"), "{run:#?}");

    // Allowed: same report, exit 0.
    let allowed = rgp(&["diff".as_ref(), old.as_os_str(), new.as_os_str(), "--allow-breaking".as_ref()]).ok();
    assert_eq!(allowed.stdout, run.stdout);

    // The other way round, additions become removals.
    let back = rgp(&["diff".as_ref(), new.as_os_str(), old.as_os_str()]).code(1);
    assert!(
        back.stdout.contains("breaking: route removed: GET /v1/items:count -> shop.v1.Shop/CountItems"),
        "{back:#?}"
    );
    assert!(back.stdout.contains("breaking: enum shop.v1.Color: value YELLOW (4) removed"), "{back:#?}");
}

#[test]
fn diff_of_a_set_with_itself_is_empty() {
    let dir = scratch("diff_same");
    let set = build_example(&dir, "set.pb");
    let run = rgp(&["diff".as_ref(), set.as_os_str(), set.as_os_str()]).ok();
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("0 breaking, 0 compatible change(s)"), "{run:#?}");
}

#[test]
fn diff_compatible_additions_exit_0() {
    let dir = scratch("diff_additions");
    let d = descriptors();
    let echo = dir.join("echo.pb");
    rgp(&[
        "build".as_ref(),
        "-I".as_ref(),
        d.as_os_str(),
        "echo/v1/echo.proto".as_ref(),
        "-o".as_ref(),
        echo.as_os_str(),
    ])
    .ok();
    let both = build_example(&dir, "both.pb");
    let run = rgp(&["diff".as_ref(), echo.as_os_str(), both.as_os_str()]).ok();
    assert!(
        run.stdout.contains("compatible: route added: GET /v1/shelves -> bookstore.v1.Bookstore/ListShelves"),
        "{run:#?}"
    );
    assert!(!run.stdout.contains("breaking:"), "{run:#?}");
    // Restricted to one service, nothing changed.
    let run = rgp(&[
        "diff".as_ref(),
        echo.as_os_str(),
        both.as_os_str(),
        "--services".as_ref(),
        "echo.v1.EchoService".as_ref(),
    ])
    .ok();
    assert_eq!(run.stdout, "");
    // Removing a service is breaking.
    let run = rgp(&["diff".as_ref(), both.as_os_str(), echo.as_os_str()]).code(1);
    assert!(
        run.stdout.contains("breaking: route removed: GET /v1/shelves -> bookstore.v1.Bookstore/ListShelves"),
        "{run:#?}"
    );
}

#[test]
fn diff_io_errors_exit_2() {
    let dir = scratch("diff_io");
    let set = build_example(&dir, "set.pb");
    rgp(&["diff".as_ref(), set.as_os_str(), "nope.pb".as_ref()]).code(2);
}

/// Writes `shop/v1/shop.proto` with these service and message bodies under DIR/NAME and builds it.
fn build_shop(dir: &std::path::Path, name: &str, service: &str, messages: &str) -> std::path::PathBuf {
    let include = dir.join(name);
    std::fs::create_dir_all(include.join("shop/v1")).unwrap();
    let proto = format!(
        "syntax = \"proto3\";\npackage shop.v1;\nimport \"google/api/annotations.proto\";\nservice Shop {{\n{service}\n}}\n{messages}\n"
    );
    std::fs::write(include.join("shop/v1/shop.proto"), proto).unwrap();
    let out = dir.join(format!("{name}.pb"));
    rgp(&[
        "build".as_ref(),
        "-I".as_ref(),
        include.as_os_str(),
        "shop/v1/shop.proto".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ])
    .ok();
    out
}

#[test]
fn diff_marks_route_retargets_response_body_broken_bindings_and_nested_fields() {
    let dir = scratch("diff_more_kinds");
    let messages = "message Req { string id = 1; }\nmessage Item { string id = 1; string title = 2; Owner owner = 3; }\nmessage Owner { string display_name = 1; }";
    let old = build_shop(
        &dir,
        "old",
        r#"  rpc Get(Req) returns (Item) { option (google.api.http) = { get: "/v1/items/{id}" }; }
  rpc Title(Req) returns (Item) { option (google.api.http) = { get: "/v1/items/{id}/title" }; }
  rpc Owner(Req) returns (Item) { option (google.api.http) = { get: "/v1/owners/{id}" }; }
  rpc Other(Req) returns (Item) { option (google.api.http) = { get: "/v1/other/{id}" }; }"#,
        messages,
    );
    let new = build_shop(
        &dir,
        "new",
        r#"  rpc Get(Req) returns (Item) { option (google.api.http) = { get: "/v1/other/{id}" }; }
  rpc Title(Req) returns (Item) { option (google.api.http) = { get: "/v1/items/{id}/title" response_body: "title" }; }
  rpc Owner(Req) returns (Item) { option (google.api.http) = { get: "/v1/owners/{idd}" }; }
  rpc Other(Req) returns (Item) { option (google.api.http) = { get: "/v1/items/{id}" }; }"#,
        &messages.replace("string display_name = 1;", "string name = 1;"),
    );
    let run = rgp(&["diff".as_ref(), old.as_os_str(), new.as_os_str()]).code(1);
    for line in [
        "breaking: route changed: GET /v1/items/{id}: calls shop.v1.Shop/Other instead of shop.v1.Shop/Get",
        "breaking: route changed: GET /v1/other/{id}: calls shop.v1.Shop/Get instead of shop.v1.Shop/Other",
        "breaking: route changed: GET /v1/items/{id}/title: response_body \"title\" instead of \"\"",
        "breaking: route changed: GET /v1/owners/{id}: path variables bind [idd] instead of [id]; the binding is now broken (run rgp check)",
        // Found by recursion into the response message's fields.
        "breaking: message shop.v1.Owner: field 1 renamed: JSON name \"displayName\" -> \"name\"",
    ] {
        assert!(run.stdout.lines().any(|l| l == line), "missing {line}\n{run:#?}");
    }
    assert!(!run.stdout.contains("compatible:"), "{run:#?}");
}
