//! `rgp build` and `rgp check`, run as the real binary.

mod common;

use common::*;
use prost::Message;

#[test]
fn build_is_reproducible_and_independent_of_argument_order() {
    let dir = scratch("build_repro");
    let a = build_example(&dir, "a.pb");
    let b = build_example(&dir, "b.pb");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());

    // Files as names relative to -I, in the other order, with a second include directory.
    let c = dir.join("c.pb");
    let d = descriptors();
    let f = fixtures();
    rgp(&[
        "build".as_ref(),
        "-I".as_ref(),
        f.as_os_str(),
        "-I".as_ref(),
        d.as_os_str(),
        "echo/v1/echo.proto".as_ref(),
        "bookstore/v1/bookstore.proto".as_ref(),
        "echo/v1/echo.proto".as_ref(),
        "-o".as_ref(),
        c.as_os_str(),
    ])
    .ok();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
}

#[test]
fn build_includes_imports_and_keeps_http_options() {
    let dir = scratch("build_imports");
    let set = build_example(&dir, "set.pb");
    let bytes = std::fs::read(&set).unwrap();
    let fds = prost_types::FileDescriptorSet::decode(bytes.as_slice()).unwrap();
    let names: Vec<&str> = fds.file.iter().map(|f| f.name()).collect();
    for expected in [
        "google/protobuf/descriptor.proto",
        "google/api/http.proto",
        "google/api/annotations.proto",
        "google/api/httpbody.proto",
        "google/protobuf/timestamp.proto",
        "bookstore/v1/bookstore.proto",
        "echo/v1/echo.proto",
    ] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    // Dependencies come before the files that import them, and no source info.
    for (i, file) in fds.file.iter().enumerate() {
        assert!(file.source_code_info.is_none(), "{} has source info", file.name());
        for dep in &file.dependency {
            let at = names.iter().position(|n| n == dep).unwrap();
            assert!(at < i, "{dep} after {}", file.name());
        }
    }
    // The google.api.http options survive: the filter finds the routes.
    let run = rgp(&["check".as_ref(), set.as_os_str()]).ok();
    assert!(run.stdout.contains("GET /v1/shelves -> bookstore.v1.Bookstore/ListShelves"), "{run:#?}");
}

#[test]
fn build_uses_the_builtin_google_protos() {
    // Only the bookstore's own directory is on the include path: google/api comes from the binary.
    let dir = scratch("build_builtin");
    let only = dir.join("protos/bookstore/v1");
    std::fs::create_dir_all(&only).unwrap();
    std::fs::copy(descriptors().join("bookstore/v1/bookstore.proto"), only.join("bookstore.proto")).unwrap();
    let out = dir.join("set.pb");
    let protos = dir.join("protos");
    rgp(&[
        "build".as_ref(),
        "-I".as_ref(),
        protos.as_os_str(),
        "bookstore/v1/bookstore.proto".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ])
    .ok();
    // Same bytes as a build with the vendored copies (the built-in ones are those copies).
    let vendored = dir.join("vendored.pb");
    let d = descriptors();
    rgp(&[
        "build".as_ref(),
        "-I".as_ref(),
        d.as_os_str(),
        "bookstore/v1/bookstore.proto".as_ref(),
        "-o".as_ref(),
        vendored.as_os_str(),
    ])
    .ok();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&vendored).unwrap());
}

#[test]
fn build_reports_errors_with_file_and_line() {
    let dir = scratch("build_errors");
    let out = dir.join("x.pb");
    let f = fixtures();
    let cases = [
        ("broken/syntax.proto", "broken/syntax.proto:7:14: expected '=', but found ';'"),
        (
            "broken/missing_import.proto",
            "broken/missing_import.proto:5:1: import 'nowhere/to_be_found.proto' not found",
        ),
        ("broken/unknown_type.proto", "broken/unknown_type.proto:6:3: name 'Nonexistent' is not defined"),
        ("broken/absent.proto", "absent.proto"),
    ];
    for (proto, message) in cases {
        let run =
            rgp(&["build".as_ref(), "-I".as_ref(), f.as_os_str(), proto.as_ref(), "-o".as_ref(), out.as_os_str()])
                .code(2);
        assert!(run.stderr.contains(message), "{proto}: {run:#?}");
        assert!(!out.exists(), "{proto}: an output was written");
    }
}

#[test]
fn check_lists_routes_of_the_example_set() {
    let dir = scratch("check_example");
    let set = build_example(&dir, "set.pb");
    let run = rgp(&["check".as_ref(), set.as_os_str()]).ok();
    let expected = [
        "GET /v1/shelves -> bookstore.v1.Bookstore/ListShelves",
        "SEARCH /v1/shelves/{shelf}/books -> bookstore.v1.Bookstore/ListBooks",
        "GET /v1/archive/{name=**} -> bookstore.v1.Bookstore/GetBook",
        "PATCH /v1/{book.name=shelves/*/books/*} -> bookstore.v1.Bookstore/UpdateBook",
        "POST /v1/{name=shelves/*/books/*}:archive -> bookstore.v1.Bookstore/ArchiveBook",
        "GET /api/v1/echo/{request}/get -> echo.v1.EchoService/EchoGet",
    ];
    for line in expected {
        assert!(run.stdout.lines().any(|l| l == line), "{line} missing: {run:#?}");
    }
    // Every line is a route; the count is not pinned, as descriptors/ grows with the example service.
    let all = run.stdout.lines().count();
    assert!(all >= 25 && run.stdout.lines().all(|l| l.contains(" -> ")), "{run:#?}");
    assert!(run.stderr.contains("note: bookstore.v1.Bookstore/Unannotated has no google.api.http binding"), "{run:#?}");
    assert!(run.stderr.contains("0 problem(s)"), "{run:#?}");

    // --services limits the routes; the example's filter options apply with --config.
    let run = rgp(&["check".as_ref(), set.as_os_str(), "--services".as_ref(), "echo.v1.EchoService".as_ref()]).ok();
    assert_eq!(run.stdout.lines().count(), 5, "{run:#?}");
    let options = root().join("envoy/transcoder-options.json");
    let run = rgp(&["check".as_ref(), set.as_os_str(), "--config".as_ref(), options.as_os_str()]).ok();
    assert_eq!(run.stdout.lines().count(), all, "{run:#?}");
}

#[test]
fn check_reports_every_field_problem_and_duplicate_routes() {
    let dir = scratch("check_fields");
    let set = build_fixture(&dir, "check/fields.proto");
    let run = rgp(&["check".as_ref(), set.as_os_str()]).code(1);
    let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    let expected = [
        "check.v1.Fields/UnknownPathField: GET \"/v1/unknown/{nme}\": path variable \"nme\": no field \"nme\" in message check.v1.Thing",
        "check.v1.Fields/UnknownBodyField: POST \"/v1/things\": body \"payload\": no field \"payload\"",
        "check.v1.Fields/UnknownResponseBody: GET \"/v1/things/{id}/title\": response_body \"titel\": no field \"titel\"",
        "check.v1.Fields/RepeatedPathField: GET \"/v1/tags/{tags}\": path variable \"tags\": field \"tags\" is repeated",
        "check.v1.Fields/MapPathField: GET \"/v1/labels/{labels}\": path variable \"labels\": field \"labels\" is a map",
        "check.v1.Fields/MessagePathField: GET \"/v1/owners/{owner}\": path variable \"owner\": field \"owner\" is a message (check.v1.Owner)",
        "check.v1.Fields/ThroughRepeated: GET \"/v1/parts/{parts.name}\": path variable \"parts.name\": field \"parts\" of check.v1.Thing is not a singular message",
        "check.v1.Fields/SameRoute: GET \"/v1/things/{name}\": GET /v1/things/{id} is already bound to check.v1.Fields/Fine (check/fields.proto)",
    ];
    for e in expected {
        let line = format!("error: check/fields.proto: {e}");
        assert!(errors.iter().any(|l| l.starts_with(&line)), "missing {line}\n{run:#?}");
    }
    assert_eq!(errors.len(), expected.len(), "{run:#?}");
    assert!(run.stdout.contains("GET /v1/things/{id} -> check.v1.Fields/Fine\n"), "{run:#?}");
    assert!(run.stdout.contains("GET /v1/things/{name} -> check.v1.Fields/SameRoute  (IGNORED"), "{run:#?}");
    assert!(run.stdout.contains("GET /v1/tags/{tags} -> check.v1.Fields/RepeatedPathField  (BROKEN"), "{run:#?}");
}

#[test]
fn check_reports_templates_that_do_not_parse() {
    let dir = scratch("check_templates");
    let set = build_fixture(&dir, "check/bad_template.proto");
    let run = rgp(&["check".as_ref(), set.as_os_str()]).code(1);
    assert!(run.stderr.contains("error: check/bad_template.proto: check.v1.Templates/Unclosed: GET \"/v1/things/{id\": template does not parse: unexpected end of template"), "{run:#?}");
    assert!(run.stderr.contains("error: check/bad_template.proto: check.v1.Templates/NoSlash: POST \"v1/things\": template does not parse: missing leading '/'"), "{run:#?}");
    // And what that means for the filter: it refuses the configuration.
    assert!(run.stderr.contains("error: the filter refuses this set and configuration"), "{run:#?}");
}

#[test]
fn check_reports_missing_services() {
    let dir = scratch("check_services");
    let set = build_example(&dir, "set.pb");
    let run =
        rgp(&["check".as_ref(), set.as_os_str(), "--services".as_ref(), "echo.v1.EchoService,shop.v1.Nope".as_ref()])
            .code(1);
    assert!(run.stderr.contains("error: shop.v1.Nope: service \"shop.v1.Nope\" is not in the descriptor set (it has: bookstore.v1.Bookstore, echo.v1.EchoService)"), "{run:#?}");
    // The same from a filter configuration's `services`.
    let config = dir.join("config.json");
    std::fs::write(
        &config,
        r#"{"services": ["bookstore.v1.Bookstore", "bookstore.v1.Gone"], "convert_grpc_status": true}"#,
    )
    .unwrap();
    let run = rgp(&["check".as_ref(), set.as_os_str(), "--config".as_ref(), config.as_os_str()]).code(1);
    assert!(
        run.stderr.contains("error: bookstore.v1.Gone: service \"bookstore.v1.Gone\" is not in the descriptor set"),
        "{run:#?}"
    );
    // A configuration the filter refuses for another reason.
    std::fs::write(&config, r#"{"print_options": {"add_whitespaces": true}}"#).unwrap();
    let run = rgp(&["check".as_ref(), set.as_os_str(), "--config".as_ref(), config.as_os_str()]).code(1);
    assert!(
        run.stderr
            .contains("the filter refuses this configuration: configuration field `print_options.add_whitespaces`"),
        "{run:#?}"
    );
}

#[test]
fn check_reports_a_set_built_without_imports() {
    let dir = scratch("check_no_imports");
    let mut compiler = protox::Compiler::new([descriptors()]).unwrap();
    compiler.include_imports(false);
    compiler.open_file("echo/v1/echo.proto").unwrap();
    let set = dir.join("no-imports.pb");
    std::fs::write(&set, compiler.encode_file_descriptor_set()).unwrap();
    let run = rgp(&["check".as_ref(), set.as_os_str()]).code(1);
    assert!(
        run.stderr
            .contains("error: echo/v1/echo.proto: imports \"google/api/annotations.proto\", which is not in the set"),
        "{run:#?}"
    );
}

#[test]
fn usage_and_io_errors_exit_2() {
    let run = rgp(&["check", "does/not/exist.pb"]).code(2);
    assert!(run.stderr.contains("cannot read does/not/exist.pb"), "{run:#?}");
    let run = rgp(&["check", "README.md"]).code(2);
    assert!(run.stderr.contains("is not a binary FileDescriptorSet"), "{run:#?}");
    rgp(&["check"]).code(2);
    rgp(&["frobnicate"]).code(2);
    rgp(&["build", "-o", "x.pb"]).code(2);
}

#[test]
fn help_on_every_level() {
    let run = rgp(&["--help"]).ok();
    for command in ["build", "check", "diff", "publish", "openapi"] {
        assert!(run.stdout.contains(command), "{run:#?}");
        let sub = rgp(&[command, "--help"]).ok();
        assert!(sub.stdout.contains("Usage: rgp"), "{command}: {sub:#?}");
    }
    rgp(&["help", "check"]).ok();
}
