//! `rgp diff`, run as the real binary on purpose-made old and new versions of an API.

mod common;

use common::*;

fn shop(dir: &std::path::Path, version: &str) -> std::path::PathBuf {
    let out = dir.join(format!("{version}.pb"));
    let include = fixtures().join("diff").join(version);
    rgp(&["build".as_ref(), "-I".as_ref(), include.as_os_str(), "shop/v1/shop.proto".as_ref(), "-o".as_ref(), out.as_os_str()]).ok();
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
    assert!(back.stdout.contains("breaking: route removed: GET /v1/items:count -> shop.v1.Shop/CountItems"), "{back:#?}");
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
    rgp(&["build".as_ref(), "-I".as_ref(), d.as_os_str(), "echo/v1/echo.proto".as_ref(), "-o".as_ref(), echo.as_os_str()]).ok();
    let both = build_example(&dir, "both.pb");
    let run = rgp(&["diff".as_ref(), echo.as_os_str(), both.as_os_str()]).ok();
    assert!(run.stdout.contains("compatible: route added: GET /v1/shelves -> bookstore.v1.Bookstore/ListShelves"), "{run:#?}");
    assert!(!run.stdout.contains("breaking:"), "{run:#?}");
    // Restricted to one service, nothing changed.
    let run = rgp(&["diff".as_ref(), echo.as_os_str(), both.as_os_str(), "--services".as_ref(), "echo.v1.EchoService".as_ref()]).ok();
    assert_eq!(run.stdout, "");
    // Removing a service is breaking.
    let run = rgp(&["diff".as_ref(), both.as_os_str(), echo.as_os_str()]).code(1);
    assert!(run.stdout.contains("breaking: route removed: GET /v1/shelves -> bookstore.v1.Bookstore/ListShelves"), "{run:#?}");
}

#[test]
fn diff_io_errors_exit_2() {
    let dir = scratch("diff_io");
    let set = build_example(&dir, "set.pb");
    rgp(&["diff".as_ref(), set.as_os_str(), "nope.pb".as_ref()]).code(2);
}
