//! Golden tests: every real-shaped AdmissionReview in tests/cases/ goes through the
//! handler; the response must match tests/golden/<case>.response.json, its patch (a
//! base64 string, as the API server reads it) is decoded and applied with json-patch to
//! the request's pod, and the patched pod must match tests/golden/<case>.pod.json, pass
//! the checks the API server would make beyond the schema, and come back unchanged when
//! injected again. `UPDATE_GOLDEN=1 cargo test -p rgp-injector --test golden` rewrites the
//! golden files (review the diff). tests/injector (pytest) validates every golden pod
//! against the Kubernetes schemas. Cases named `reflection-default-*` are answered by a
//! webhook started with `--default-descriptor-source reflection`; the others by the defaults.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rgp_injector::admission::{response_patch, review};
use rgp_injector::options::{DefaultSource, InjectorConfig};
use serde_json::{json, Value};

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(name)
}

fn config() -> InjectorConfig {
    InjectorConfig::default()
}

/// The webhook's flags for one case (see the module comment).
fn config_for(case: &str) -> InjectorConfig {
    let mut cfg = config();
    if case.starts_with("reflection-default-") {
        cfg.default_source = DefaultSource::Reflection;
    }
    cfg
}

/// What each case must produce: verdict and text the answer must contain.
fn expectations() -> BTreeMap<&'static str, (&'static str, Vec<&'static str>)> {
    BTreeMap::from([
        ("deployment-generatename", ("injected", vec![])),
        ("bare-pod-label-only", ("injected", vec![])),
        ("no-labels", ("skipped", vec![])),
        ("host-network", ("skipped", vec!["hostNetwork"])),
        ("already-injected", ("skipped", vec![])),
        ("job-pod", ("injected", vec![])),
        (
            "job-pod-classic",
            ("injected", vec!["restartPolicy Never", "does not complete"]),
        ),
        ("classic-layout", ("injected", vec![])),
        ("all-options", ("injected", vec![])),
        ("descriptor-volume", ("injected", vec![])),
        ("named-port", ("injected", vec![])),
        (
            "undeclared-port",
            ("injected", vec!["no container of the pod declares port 9000"]),
        ),
        ("init-containers-and-default-container", ("injected", vec![])),
        (
            "bad-port-zero",
            ("denied", vec!["rustGrpcProxyEnable=\\\"0\\\"", "1-65535"]),
        ),
        (
            "bad-port-too-large",
            ("denied", vec!["rustGrpcProxyEnable=\\\"70000\\\"", "1-65535"]),
        ),
        (
            "bad-port-name",
            (
                "denied",
                vec!["rustGrpcProxyEnable=\\\"grpc-web\\\"", "nor the name of a port"],
            ),
        ),
        ("bad-port-empty", ("denied", vec!["label rustGrpcProxyEnable is empty"])),
        (
            "bad-annotations",
            (
                "denied",
                vec![
                    "unknown annotation rust-grpc-proxy/prot",
                    "memory-request=\\\"lots\\\": not a Kubernetes quantity",
                    "cpu request 2 is above its limit 500m",
                    "health-port=\\\"80\\\": ports below 1024 need root",
                    "\\\"not a service\\\" is not a fully qualified service name",
                    "unknown option \\\"add_whitespaces\\\"",
                    "native-sidecar=\\\"yes\\\"",
                    "descriptor-key=\\\"sets/v2.pb\\\": not a ConfigMap key",
                    "runtime=\\\"jvm\\\": \\\"native\\\" (the dynamic module, the default) or \\\"wasm\\\"",
                ],
            ),
        ),
        (
            "port-conflict",
            ("denied", vec!["port 6789 is declared by container bookstore"]),
        ),
        ("update-operation", ("skipped", vec![])),
        (
            "not-a-pod",
            ("error", vec!["only handles v1 Pods, not apps/v1 Deployment"]),
        ),
        ("malformed-v1beta1", ("error", vec!["admission.k8s.io/v1beta1"])),
        ("malformed-no-request", ("error", vec!["no request"])),
        ("malformed-pod", ("error", vec!["does not parse as a v1 Pod"])),
        ("malformed-not-json", ("error", vec!["not JSON"])),
        ("reflection-annotation", ("injected", vec![])),
        ("runtime-wasm", ("injected", vec![])),
        // Reflection pods run the module by default (reflection-annotation) and ask for the
        // Wasm filter explicitly; reflection-native says the default out loud.
        ("reflection-native", ("injected", vec![])),
        ("reflection-wasm", ("injected", vec![])),
        ("reflection-default-label-only", ("injected", vec![])),
        ("reflection-default-configmap-annotation", ("injected", vec![])),
        (
            "reflection-conflict",
            (
                "denied",
                vec![
                    "annotation rust-grpc-proxy/descriptor-configmap names a mounted descriptor set, but annotation rust-grpc-proxy/descriptor-source=\\\"reflection\\\" reads the descriptors from the app's gRPC reflection service",
                    "annotation rust-grpc-proxy/descriptor-key names a mounted descriptor set",
                    "refresh-interval=\\\"1m\\\": not a duration such as",
                ],
            ),
        ),
        (
            "reflection-bad-source",
            (
                "denied",
                vec![
                    "descriptor-source=\\\"grpc-reflection\\\": one of configmap, volume, reflection",
                    "refresh-interval applies only to rust-grpc-proxy/descriptor-source \\\"reflection\\\"",
                ],
            ),
        ),
    ])
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}

/// Compare with (or, with UPDATE_GOLDEN=1, write) a golden file.
fn golden(name: &str, actual: &str, failures: &mut Vec<String>) {
    let path = dir("golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    match std::fs::read_to_string(&path) {
        Ok(expected) if expected == actual => {}
        Ok(_) => failures
            .push(format!("{name}: differs from the golden file (UPDATE_GOLDEN=1 to rewrite, then review the diff)")),
        Err(_) => failures.push(format!("{name}: golden file missing (UPDATE_GOLDEN=1 writes it)")),
    }
}

#[test]
fn golden_cases() {
    let expect = expectations();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir("cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    cases.sort();
    let names: BTreeSet<String> = cases.iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    let expected_names: BTreeSet<String> = expect.keys().map(|s| s.to_string()).collect();
    assert_eq!(names, expected_names, "every case needs an expectation and every expectation a case");

    let mut failures = Vec::new();
    for path in &cases {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let body = std::fs::read(path).unwrap();
        let decision = review(&body, &config_for(&name));
        let resp = &decision.review;
        let (verdict, needles) = &expect[name.as_str()];
        assert_eq!(decision.verdict, *verdict, "{name}: {}", decision.reason);

        // The review as the API server reads it.
        assert_eq!(resp["apiVersion"], "admission.k8s.io/v1", "{name}");
        assert_eq!(resp["kind"], "AdmissionReview", "{name}");
        let input: Option<Value> = serde_json::from_slice(&body).ok();
        let uid = input.as_ref().and_then(|v| v.pointer("/request/uid")).cloned().unwrap_or(json!(""));
        assert_eq!(resp["response"]["uid"], uid, "{name}: the uid must be copied from the request");
        assert_eq!(resp["response"]["allowed"], json!(matches!(*verdict, "injected" | "skipped")), "{name}");
        if matches!(*verdict, "denied" | "error") {
            assert_eq!(resp["response"]["status"]["code"], 400, "{name}");
            assert!(resp["response"].get("patch").is_none(), "{name}");
        }
        let text = resp.to_string();
        for n in needles {
            assert!(text.contains(n), "{name}: answer lacks {n:?}: {text}");
        }
        golden(&format!("{name}.response.json"), &pretty(resp), &mut failures);

        let patch = response_patch(resp).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(patch.is_some(), *verdict == "injected", "{name}: a patch exactly when injected");
        if let Some(patch) = patch {
            assert_eq!(resp["response"]["patchType"], "JSONPatch", "{name}");
            assert!(resp["response"]["patch"].is_string(), "{name}: patch must be base64 text");
            golden(&format!("{name}.patch.json"), &pretty(&serde_json::to_value(&patch).unwrap()), &mut failures);
            let mut pod = input.as_ref().unwrap()["request"]["object"].clone();
            json_patch::patch(&mut pod, &patch).unwrap_or_else(|e| panic!("{name}: patch does not apply: {e}"));
            api_server_checks(&name, &pod);
            golden(&format!("{name}.pod.json"), &pretty(&pod), &mut failures);

            // Idempotency: the patched pod, sent again, is admitted unchanged.
            let mut again = input.clone().unwrap();
            again["request"]["object"] = pod.clone();
            again["request"]["uid"] = json!("second-pass");
            let d2 = review(&serde_json::to_vec(&again).unwrap(), &config_for(&name));
            assert_eq!(d2.verdict, "skipped", "{name}: re-injection: {}", d2.reason);
            assert!(d2.reason.contains("already injected"), "{name}: {}", d2.reason);
            assert!(d2.review["response"].get("patch").is_none(), "{name}: re-injection patched again");
            assert_eq!(d2.review["response"]["uid"], "second-pass");
        }
    }
    assert!(failures.is_empty(), "golden mismatches:\n{}", failures.join("\n"));
}

/// Checks the API server makes that a JSON schema cannot express (a subset of
/// ValidatePod), so a golden pod that passes the schemas is also one the API server
/// would accept.
fn api_server_checks(name: &str, pod: &Value) {
    let spec = &pod["spec"];
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    let inits = spec["initContainers"].as_array().cloned().unwrap_or_default();
    let volumes: Vec<String> =
        spec["volumes"].as_array().into_iter().flatten().map(|v| v["name"].as_str().unwrap().to_string()).collect();
    let unique_volumes: BTreeSet<&String> = volumes.iter().collect();
    assert_eq!(unique_volumes.len(), volumes.len(), "{name}: duplicate volume names");

    let mut names = BTreeSet::new();
    let mut port_names = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for (c, is_init) in containers.iter().map(|c| (c, false)).chain(inits.iter().map(|c| (c, true))) {
        let cname = c["name"].as_str().unwrap();
        assert!(names.insert(cname.to_string()), "{name}: duplicate container name {cname}");
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            let v = m["name"].as_str().unwrap();
            assert!(volumes.iter().any(|x| x == v), "{name}: {cname} mounts unknown volume {v}");
        }
        for p in c["ports"].as_array().into_iter().flatten() {
            if let Some(pn) = p["name"].as_str() {
                assert!(pn.len() <= 15, "{name}: port name {pn} longer than 15");
                assert!(port_names.insert(pn.to_string()), "{name}: duplicate port name {pn}");
            }
            let n = p["containerPort"].as_i64().unwrap();
            assert!(ports.insert(n), "{name}: port {n} declared twice in the pod");
        }
        let restart_always = c["restartPolicy"] == "Always";
        if !is_init {
            assert!(c.get("restartPolicy").is_none(), "{name}: restartPolicy on a regular container");
        }
        if is_init && !restart_always {
            for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                assert!(c.get(probe).is_none(), "{name}: {probe} on a (non-sidecar) init container {cname}");
            }
        }
        if let Some(limits) = c["resources"]["limits"].as_object() {
            for (res, lim) in limits {
                if let Some(req) = c["resources"]["requests"][res].as_str() {
                    let q = rgp_injector::options::quantity;
                    assert!(
                        q(req).unwrap() <= q(lim.as_str().unwrap()).unwrap(),
                        "{name}: {cname} {res} request > limit"
                    );
                }
            }
        }
    }
    let anns = pod["metadata"]["annotations"].as_object().expect("annotations");
    let status: Value = serde_json::from_str(anns["rust-grpc-proxy/status"].as_str().unwrap()).unwrap();
    assert_eq!(status["container"], "rust-grpc-proxy");
    let default = anns["kubectl.kubernetes.io/default-container"].as_str().unwrap();
    assert!(
        containers.iter().any(|c| c["name"] == default) && default != "rust-grpc-proxy",
        "{name}: default-container {default} must be an app container"
    );

    // The sidecar itself.
    let sidecar = containers
        .iter()
        .chain(inits.iter())
        .find(|c| c["name"] == "rust-grpc-proxy")
        .unwrap_or_else(|| panic!("{name}: no sidecar"));
    let native = status["layout"] == "native";
    assert_eq!(native, inits.iter().any(|c| c["name"] == "rust-grpc-proxy"), "{name}: layout");
    assert_eq!(native, sidecar["restartPolicy"] == "Always", "{name}: restartPolicy");
    if native {
        assert_eq!(inits.last().unwrap()["name"], "rust-grpc-proxy", "{name}: the sidecar is the last init container");
    }
    let sc = &sidecar["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(sidecar["readinessProbe"]["httpGet"].is_object());
    assert!(sidecar["resources"]["requests"].is_object());
    assert!(sidecar["resources"]["limits"].is_object());
    // The descriptors: a mounted set handed to the sidecar step, or (and only then
    // nothing mounted) the app's reflection service read by the filter through `app`.
    let args: Vec<&str> = sidecar["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let mounted =
        sidecar["volumeMounts"].as_array().unwrap().iter().any(|m| m["mountPath"] == "/etc/rust-grpc-proxy/descriptor");
    assert_eq!(args.contains(&"--descriptor"), mounted, "{name}: --descriptor without its mount or the reverse");
    let bootstrap: Value = serde_json::from_str(sidecar["env"][0]["value"].as_str().unwrap()).unwrap();
    // The runtime: the dynamic module (found through the env's search path), or the Wasm
    // filter with its Lua companion right after it and `lua_companion` in its options.
    let env = &sidecar["env"][1];
    assert_eq!(env["name"], "ENVOY_DYNAMIC_MODULES_SEARCH_PATH", "{name}");
    assert_eq!(env["value"], rgp_injector::IMAGE_DYNMOD_DIR, "{name}");
    let filters = bootstrap
        .pointer("/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{name}: no http_filters in the bootstrap"));
    let names: Vec<&str> = filters.iter().filter_map(|f| f["name"].as_str()).collect();
    let (slot, runtime) = if names[0] == "envoy.filters.http.wasm" {
        assert_eq!(names, ["envoy.filters.http.wasm", "envoy.filters.http.lua", "envoy.filters.http.router"], "{name}");
        let lua = filters[1].pointer("/typed_config/extension_config/typed_config/default_source_code/inline_string");
        assert_eq!(lua.and_then(Value::as_str), Some(include_str!("../../../envoy/companion.lua")), "{name}");
        // Run only for requests with the Wasm filter's marker.
        let gate: Value = serde_json::from_str(include_str!("../../../envoy/companion-gate.json")).unwrap();
        let predicate = filters[1].pointer("/typed_config/xds_matcher/matcher_list/matchers/0/predicate");
        assert_eq!(predicate, Some(&json!({ "not_matcher": gate })), "{name}");
        ("/typed_config/config/configuration/value", "wasm")
    } else {
        assert_eq!(names, ["envoy.filters.http.dynamic_modules", "envoy.filters.http.router"], "{name}");
        ("/typed_config/filter_config/value", "native")
    };
    assert_eq!(status["runtime"], runtime, "{name}: the status annotation names the runtime");
    let filter_config = filters[0]
        .pointer(slot)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{name}: no filter configuration in the bootstrap"));
    let options: Value = serde_json::from_str(filter_config).unwrap();
    assert_eq!(options.get("lua_companion"), (runtime == "wasm").then_some(&json!(true)), "{name}: {options}");
    if mounted {
        assert!(options.get("descriptor_reflection").is_none(), "{name}: {options}");
    } else {
        assert_eq!(options["descriptor_reflection"], json!({"cluster": "app"}), "{name}");
        assert!(options["refresh_interval"].is_string(), "{name}: {options}");
        let app = &bootstrap["static_resources"]["clusters"][0];
        assert_eq!(app["name"], "app", "{name}");
        assert_eq!(
            app.pointer("/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/port_value"),
            Some(&status["grpcPort"]),
            "{name}: reflection must ask the app's own gRPC port"
        );
    }
    // No descriptor bytes anywhere in the pod: it must stay small.
    assert!(pod.to_string().len() < 32 * 1024, "{name}: patched pod unexpectedly large");
    assert!(!pod.to_string().contains("proto_descriptor_bin"), "{name}: descriptor in the pod spec");
}

/// The patch serialization issue, pinned: kube-core writes `patch` as an array of numbers,
/// and admission::to_json turns it into the base64 the API server (Go's []byte) reads.
#[test]
fn patch_is_base64_not_number_array() {
    use kube_core::admission::AdmissionResponse;
    let raw = serde_json::to_value(
        AdmissionResponse::invalid("x").with_patch(json_patch::Patch(vec![])).unwrap().into_review(),
    )
    .unwrap();
    assert!(
        raw["response"]["patch"].is_array(),
        "kube-core now serializes the patch as {}: admission::to_json may no longer be needed",
        raw["response"]["patch"]
    );
    let fixed = rgp_injector::admission::to_json(
        AdmissionResponse::invalid("x").with_patch(json_patch::Patch(vec![])).unwrap().into_review(),
    );
    assert_eq!(fixed["response"]["patch"], "W10="); // base64("[]")
}

/// The response review reads back into kube-core's own types (what a Rust client of the
/// webhook would use) once the patch is turned back into kube-core's byte array: field
/// names and shapes are the API's, and the bytes are the patch.
#[test]
fn response_reads_back_into_kube_core_types() {
    use kube_core::admission::AdmissionReview;
    use kube_core::DynamicObject;
    let body = std::fs::read(dir("cases").join("deployment-generatename.json")).unwrap();
    let d = review(&body, &config());
    let patch = response_patch(&d.review).unwrap().unwrap();
    let mut v = d.review.clone();
    let bytes = serde_json::to_vec(&patch).unwrap();
    v["response"]["patch"] = json!(bytes);
    let back: AdmissionReview<DynamicObject> = serde_json::from_value(v).unwrap();
    let resp = back.response.unwrap();
    assert!(resp.allowed);
    assert_eq!(resp.uid, "4b1c2f7e-9d0a-4c55-8f0e-1a2b3c4d5e01");
    let again: json_patch::Patch = serde_json::from_slice(resp.patch.as_ref().unwrap()).unwrap();
    assert_eq!(again, patch);
}

/// The webhook's own flag parsing, through `rgp-injector review`: `--flag=value` (as
/// deploy/injector.yaml writes flags) and `--flag value` both set the default source,
/// and the answer is the golden one.
#[test]
fn review_command_reads_flags_in_both_forms() {
    let case = dir("cases").join("reflection-default-label-only.json");
    let expected = std::fs::read_to_string(dir("golden").join("reflection-default-label-only.response.json")).unwrap();
    for flags in [
        vec!["--default-descriptor-source=reflection", "--native-sidecars=true"],
        vec!["--default-descriptor-source", "reflection"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rgp-injector"))
            .arg("review")
            .args(&flags)
            .arg(&case)
            .output()
            .unwrap();
        assert!(out.status.success(), "{flags:?}: {}", String::from_utf8_lossy(&out.stderr));
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(pretty(&got), expected, "{flags:?}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rgp-injector"))
        .args(["review", "--default-descriptor-source=grpc"])
        .arg(&case)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("configmap or reflection"));
}
