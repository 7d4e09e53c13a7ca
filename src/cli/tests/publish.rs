//! `rgp publish`, run as the real binary. (tests/cli/test_outputs.py also parses its YAML.)

mod common;

use common::*;
use sha2::{Digest, Sha256};

#[test]
fn publish_writes_set_sha_configmap_config_and_envoy_snippet() {
    let dir = scratch("publish_ok");
    let set = build_example(&dir, "set.pb");
    let out = dir.join("out");
    let options = root().join("envoy/transcoder-options.json");
    let run = rgp(&[
        "publish".as_ref(),
        set.as_os_str(),
        "--name".as_ref(),
        "bookstore-api".as_ref(),
        "--namespace".as_ref(),
        "shop".as_ref(),
        "--config".as_ref(),
        options.as_os_str(),
        "--services".as_ref(),
        "bookstore.v1.Bookstore".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ])
    .ok();
    assert_eq!(run.stdout.lines().count(), 5, "{run:#?}");

    let bytes = std::fs::read(out.join("bookstore-api.pb")).unwrap();
    assert_eq!(bytes, std::fs::read(&set).unwrap());
    let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    // The format of sha256sum, so `sha256sum -c bookstore-api.pb.sha256` checks it.
    assert_eq!(
        std::fs::read_to_string(out.join("bookstore-api.pb.sha256")).unwrap(),
        format!("{sha}  bookstore-api.pb\n")
    );

    let configmap = std::fs::read_to_string(out.join("bookstore-api.configmap.yaml")).unwrap();
    assert!(configmap.contains("kind: ConfigMap\n"), "{configmap}");
    assert!(configmap.contains("  name: bookstore-api\n  namespace: shop\n"), "{configmap}");
    assert!(configmap.contains(&format!("rust-grpc-proxy/descriptor-sha256: \"{sha}\"")), "{configmap}");
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    assert!(configmap.contains(&format!("binaryData:\n  bookstore-api.pb: {b64}\n")), "{configmap}");

    // The filter configuration loads in the engine exactly as the filter loads it, with the options of --config.
    let config = std::fs::read(out.join("bookstore-api.filter.json")).unwrap();
    let transcoder =
        transcoder::Transcoder::from_json(&config).expect("the filter accepts the published configuration");
    assert!(transcoder.config().convert_grpc_status);
    assert!(transcoder.config().lua_companion, "the snippet's Wasm filter hands bodiless requests to its companion");
    assert_eq!(transcoder.config().services, ["bookstore.v1.Bookstore"]);
    // As many routes as `rgp check` lists for the service (none of the example's is broken or duplicate).
    let check =
        rgp(&["check".as_ref(), set.as_os_str(), "--services".as_ref(), "bookstore.v1.Bookstore".as_ref()]).ok();
    assert!(transcoder.routes().len() >= 20);
    assert_eq!(transcoder.routes().len(), check.stdout.lines().count());

    let envoy = std::fs::read_to_string(out.join("bookstore-api.envoy.yaml")).unwrap();
    for needle in [
        "- name: envoy.filters.http.wasm\n",
        "allow_on_headers_stop_iteration: true\n",
        "\"@type\": type.googleapis.com/google.protobuf.StringValue\n",
        "filename: '/etc/envoy/rust_grpc_proxy.wasm'\n",
        "- name: envoy.filters.http.lua\n",
        "- name: envoy.filters.http.router\n",
    ] {
        assert!(envoy.contains(needle), "{needle} missing:\n{envoy}");
    }
    let value_line = envoy.lines().find(|l| l.trim_start().starts_with("value: '")).unwrap();
    let json = value_line.trim_start().trim_start_matches("value: '").trim_end_matches('\'').replace("''", "'");
    let inline: serde_json::Value = serde_json::from_str(&json).unwrap();
    let file: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(inline, file);

    // Same input, same bytes.
    let again = dir.join("again");
    rgp(&[
        "publish".as_ref(),
        set.as_os_str(),
        "--name".as_ref(),
        "bookstore-api".as_ref(),
        "--namespace".as_ref(),
        "shop".as_ref(),
        "--config".as_ref(),
        options.as_os_str(),
        "--services".as_ref(),
        "bookstore.v1.Bookstore".as_ref(),
        "-o".as_ref(),
        again.as_os_str(),
    ])
    .ok();
    for f in ["bookstore-api.configmap.yaml", "bookstore-api.filter.json", "bookstore-api.envoy.yaml"] {
        assert_eq!(std::fs::read(out.join(f)).unwrap(), std::fs::read(again.join(f)).unwrap(), "{f}");
    }
}

#[test]
fn publish_refuses_what_check_refuses() {
    let dir = scratch("publish_refused");
    let set = build_fixture(&dir, "check/fields.proto");
    let out = dir.join("out");
    let run = rgp(&[
        "publish".as_ref(),
        set.as_os_str(),
        "--name".as_ref(),
        "fields".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ])
    .code(1);
    assert!(run.stderr.contains("not published"), "{run:#?}");
    assert!(run.stderr.contains("error: check/fields.proto: check.v1.Fields/UnknownPathField"), "{run:#?}");
    assert!(!out.exists());

    let example = build_example(&dir, "set.pb");
    let run = rgp(&[
        "publish".as_ref(),
        example.as_os_str(),
        "--name".as_ref(),
        "x".as_ref(),
        "--services".as_ref(),
        "no.Such".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ])
    .code(1);
    assert!(run.stderr.contains("service \"no.Such\" is not in the descriptor set"), "{run:#?}");
    let run = rgp(&[
        "publish".as_ref(),
        example.as_os_str(),
        "--name".as_ref(),
        "Bad_Name".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ])
    .code(2);
    assert!(run.stderr.contains("--name \"Bad_Name\""), "{run:#?}");
    assert!(!out.exists());
}
