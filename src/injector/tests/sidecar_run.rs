//! The sidecar as it would run: a pod goes through the webhook, and the injected
//! container's own command, args and environment are run on this machine, with what the
//! kubelet would provide emulated by paths: the image's files (rgp-injector, Envoy, the
//! .wasm) at their in-image paths, the ConfigMap volume as a directory holding the
//! descriptor set under its key, the emptyDir as an empty directory. Every in-container
//! path in command, args and env is replaced by its local stand-in; nothing else of the
//! container spec is changed. The example gRPC service listens on the labelled port, the
//! readiness probe the pod declares must pass, and curl calls REST (and native gRPC)
//! through the sidecar's port.
//!
//! The same for descriptor source reflection: a pod with only the label, a webhook
//! started with `--default-descriptor-source reflection`, no volume but the emptyDir, and
//! the example service serving reflection (`serve --reflection`, tonic's v1alpha).
//!
//! Both runtimes: a pod by default runs the dynamic module (INJECTOR_DYNMOD, found through
//! the ENVOY_DYNAMIC_MODULES_SEARCH_PATH the container's env sets), one annotated
//! `runtime: wasm` the .wasm with its Lua companion, reflection pods alike. Either way a
//! transcoded GET goes through the router (its `http.rest.rq_total` counts it).
//!
//! Needs INJECTOR_ENVOY, INJECTOR_WASM, INJECTOR_DYNMOD, INJECTOR_EXAMPLE_SERVICE,
//! INJECTOR_DESCRIPTORS (`make test-injector` sets them after building what they name).
//! Without them the test says so and does nothing.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rgp_injector::admission::{response_patch, review};
use rgp_injector::options::{DefaultSource, InjectorConfig};
use serde_json::{json, Value};

struct Kill(Vec<Child>);
impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn env_path(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os(name)?);
    assert!(p.exists(), "{name}={} does not exist (make test-injector builds it)", p.display());
    Some(p)
}

/// The real Envoy, .wasm, example service and descriptor set that `make test-injector`
/// names in INJECTOR_ENVOY, INJECTOR_WASM, INJECTOR_EXAMPLE_SERVICE and
/// INJECTOR_DESCRIPTORS; None (and a NOT RUN line) without them or INJECTOR_DYNMOD.
fn real_inputs() -> Option<[PathBuf; 4]> {
    let inputs = ["INJECTOR_ENVOY", "INJECTOR_WASM", "INJECTOR_EXAMPLE_SERVICE", "INJECTOR_DESCRIPTORS"].map(env_path);
    if inputs.iter().any(Option::is_none) || dynmod().is_none() {
        eprintln!("NOT RUN: set INJECTOR_ENVOY, INJECTOR_WASM, INJECTOR_DYNMOD, INJECTOR_EXAMPLE_SERVICE, INJECTOR_DESCRIPTORS (make test-injector does)");
        return None;
    }
    Some(inputs.map(Option::unwrap))
}

/// INJECTOR_DYNMOD: librust_grpc_proxy.so, which Envoy finds by name in its directory.
fn dynmod() -> Option<PathBuf> {
    env_path("INJECTOR_DYNMOD")
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl").args(["-sS", "--max-time", "10"]).args(args).output().expect("curl runs");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The pod of the Deployment case, labelled with `grpc_port` and with the sidecar's ports
/// set by annotations (free ports: tests run in parallel with other suites).
fn patched_pod(grpc_port: u16, rest: u16, health: u16, admin: u16, extra: &[(&str, &str)]) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut r: Value =
        serde_json::from_slice(&std::fs::read(dir.join("deployment-generatename.json")).unwrap()).unwrap();
    let obj = &mut r["request"]["object"];
    obj["metadata"]["labels"]["rustGrpcProxyEnable"] = json!(grpc_port.to_string());
    obj["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(grpc_port);
    let a = &mut obj["metadata"]["annotations"];
    a["rust-grpc-proxy/port"] = json!(rest.to_string());
    a["rust-grpc-proxy/health-port"] = json!(health.to_string());
    a["rust-grpc-proxy/admin-port"] = json!(admin.to_string());
    for (k, v) in extra {
        a[*k] = json!(v);
    }
    let d = review(&serde_json::to_vec(&r).unwrap(), &InjectorConfig::default());
    assert_eq!(d.verdict, "injected", "{}", d.reason);
    let patch = response_patch(&d.review).unwrap().unwrap();
    let mut pod = r["request"]["object"].clone();
    json_patch::patch(&mut pod, &patch).unwrap();
    pod
}

fn replace_all(s: &str, map: &[(String, String)]) -> String {
    // Longest in-container path first, so /a/b is mapped before /a.
    let mut out = s.to_string();
    for (from, to) in map {
        out = out.replace(from.as_str(), to);
    }
    out
}

/// The injected container as the kubelet would start it, emulated by paths.
struct Container {
    sidecar: Value,
    root: PathBuf,
    command: Vec<String>,
    env: Vec<(String, String)>,
}

fn as_kubelet_would(pod: &Value, name: &str, envoy: &Path, wasm: &Path, descriptors: &Path) -> Container {
    let spec = &pod["spec"];
    let sidecar = spec["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rust-grpc-proxy")
        .expect("native sidecar")
        .clone();

    // What the kubelet would provide, under a temporary root.
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sidecar-run-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let mut map: Vec<(String, String)> = vec![
        (rgp_injector::IMAGE_INJECTOR_BIN.into(), env!("CARGO_BIN_EXE_rgp-injector").into()),
        (rgp_injector::IMAGE_ENVOY_BIN.into(), envoy.display().to_string()),
        (rgp_injector::IMAGE_WASM.into(), wasm.display().to_string()),
    ];
    if let Some(dir) = dynmod().as_deref().and_then(Path::parent) {
        map.push((rgp_injector::IMAGE_DYNMOD_DIR.into(), dir.display().to_string()));
    }
    let mut writable = Vec::new();
    for m in sidecar["volumeMounts"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let mount = m["mountPath"].as_str().unwrap();
        let vol =
            spec["volumes"].as_array().unwrap().iter().find(|v| v["name"] == name).expect("mounted volume exists");
        let local = root.join(name);
        std::fs::create_dir_all(&local).unwrap();
        if let Some(cm) = vol.get("configMap") {
            // The ConfigMap `rgp publish SET.pb --name bookstore` writes: key bookstore.pb.
            assert_eq!(cm["name"], "bookstore");
            std::fs::copy(descriptors, local.join("bookstore.pb")).unwrap();
            assert_eq!(m["readOnly"], true, "the descriptor is mounted read-only");
        } else {
            assert!(vol.get("emptyDir").is_some(), "unexpected volume {vol}");
            assert_ne!(m["readOnly"], true);
            writable.push(mount.to_string());
        }
        map.push((mount.to_string(), local.display().to_string()));
    }
    map.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));

    // readOnlyRootFilesystem: the only file the container writes is under a writable mount.
    let args: Vec<String> =
        sidecar["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    let out_at = args.iter().position(|a| a == "--config-out").unwrap() + 1;
    assert!(
        writable.iter().any(|w| args[out_at].starts_with(&format!("{w}/"))),
        "{} is not on an emptyDir",
        args[out_at]
    );
    assert_eq!(sidecar["securityContext"]["readOnlyRootFilesystem"], true);

    let command: Vec<String> = sidecar["command"]
        .as_array()
        .unwrap()
        .iter()
        .chain(sidecar["args"].as_array().unwrap())
        .map(|a| replace_all(a.as_str().unwrap(), &map))
        .collect();
    let env: Vec<(String, String)> = sidecar["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), replace_all(e["value"].as_str().unwrap(), &map)))
        .collect();

    Container { sidecar, root, command, env }
}

/// Starts the container's command with exactly its environment; stdout (Envoy's access
/// log) to `sidecar.log`, stderr to `sidecar.err` under the container's root.
fn spawn_sidecar(c: &Container) -> Child {
    Command::new(&c.command[0])
        .args(&c.command[1..])
        .env_clear()
        .envs(c.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&c.root)
        .stdout(std::fs::File::create(c.root.join("sidecar.log")).unwrap())
        .stderr(std::fs::File::create(c.root.join("sidecar.err")).unwrap())
        .spawn()
        .unwrap()
}

/// Starts the example service on `grpc` (with `extra` arguments), once it listens.
fn spawn_example(example: &Path, grpc: u16, extra: &[&str]) -> Child {
    let mut svc = Command::new(example)
        .args(["serve", "--listen", &format!("127.0.0.1:{grpc}")])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(svc.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("listening on"), "example service: {line}");
    svc
}

/// Waits for the pod's readiness probe to pass, as the kubelet would run it.
fn wait_ready(c: &Container, sidecar: &mut Child) {
    let probe = &c.sidecar["readinessProbe"]["httpGet"];
    let probe_url = format!("http://127.0.0.1:{}{}", probe["port"], probe["path"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, _) = curl(&["-o", "/dev/null", "-w", "%{http_code}", &probe_url]);
        if code == "200" {
            return;
        }
        if let Some(status) = sidecar.try_wait().unwrap() {
            panic!(
                "the sidecar exited ({status}):\n{}",
                std::fs::read_to_string(c.root.join("sidecar.err")).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "readiness probe never passed: {probe_url}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The router's count of the requests it routed on the `rest` listener.
fn routed(admin: u16) -> u64 {
    let (out, e) = curl(&[&format!("http://127.0.0.1:{admin}/stats?filter=^http\\.rest\\.rq_total$")]);
    let value = out.trim().strip_prefix("http.rest.rq_total: ").and_then(|v| v.parse().ok());
    value.unwrap_or_else(|| panic!("no http.rest.rq_total in the admin's stats: {out} {e}"))
}

/// REST (GET, GET with a header, POST, an error) and native gRPC through the sidecar's
/// port; the GET goes through the router (the module's body, or the Wasm filter's companion).
fn check_rest_and_native_grpc(rest: u16, admin: u16, root: &Path) {
    let base = format!("http://127.0.0.1:{rest}");
    let before = routed(admin);
    let (body, e) = curl(&[&format!("{base}/v1/shelves")]);
    assert!(body.contains("\"shelves\"") && body.contains("Fiction"), "GET /v1/shelves: {body} {e}");
    assert_eq!(routed(admin), before + 1, "the GET went through the router");
    let (body, e) = curl(&[&format!("{base}/api/v1/echo/hello/get?query=666"), "-H", "MD-hello: world"]);
    assert_eq!(body.trim(), r#"{"response":"GET md-hello=world request=hello query=666"}"#, "{e}");
    let (body, e) = curl(&["-X", "POST", &format!("{base}/v1/shelves"), "-d", r#"{"theme": "Poetry"}"#]);
    assert!(body.contains("Poetry"), "POST /v1/shelves: {body} {e}");
    let (out, e) = curl(&["-i", &format!("{base}/v1/fail/5")]);
    assert!(out.starts_with("HTTP/1.1 404"), "gRPC NOT_FOUND -> 404: {out} {e}");

    // Native gRPC passes through the same port (h2c): ListShelves(Empty), an empty frame.
    let frame = root.join("empty.frame");
    std::fs::write(&frame, [0u8; 5]).unwrap();
    let (out, e) = curl(&[
        "--http2-prior-knowledge",
        "-D",
        "-",
        "-o",
        root.join("grpc.out").to_str().unwrap(),
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "--data-binary",
        &format!("@{}", frame.display()),
        &format!("{base}/bookstore.v1.Bookstore/ListShelves"),
    ]);
    assert!(out.starts_with("HTTP/2 200"), "native gRPC: {out} {e}");
    assert!(out.contains("grpc-status: 0"), "native gRPC trailers: {out}");
    let answer = std::fs::read(root.join("grpc.out")).unwrap();
    assert!(answer.len() > 5 && answer.windows(7).any(|w| w == b"Fiction"), "native gRPC body: {answer:?}");

    // Envoy flushes its stdout access log on a timer (about a second), not per request.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let access = std::fs::read_to_string(root.join("sidecar.log")).unwrap();
        if access.contains("access: \"POST /v1/shelves") {
            break;
        }
        assert!(Instant::now() < deadline, "Envoy's access log: {access}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The default runtime (the dynamic module), and `runtime: wasm` (the .wasm and its companion).
#[test]
fn injected_sidecar_serves_rest_through_real_envoy() {
    serves_rest("native", &[], "envoy.filters.http.dynamic_modules");
}

#[test]
fn injected_wasm_sidecar_serves_rest_through_real_envoy() {
    serves_rest("wasm", &[("rust-grpc-proxy/runtime", "wasm")], "envoy.filters.http.lua");
}

/// Runs the pod annotated with `extra`; `filter` must be in the rendered configuration.
fn serves_rest(name: &str, extra: &[(&str, &str)], filter: &str) {
    let Some([envoy, wasm, example, descriptors]) = real_inputs() else { return };
    let (grpc, rest, health, admin) = (free_port(), free_port(), free_port(), free_port());
    let pod = patched_pod(grpc, rest, health, admin, extra);
    let c = as_kubelet_would(&pod, name, &envoy, &wasm, &descriptors);

    let mut procs = Kill(Vec::new());
    procs.0.push(spawn_example(&example, grpc, &[]));
    procs.0.push(spawn_sidecar(&c));
    wait_ready(&c, &mut procs.0[1]);
    let err = std::fs::read_to_string(c.root.join("sidecar.err")).unwrap();
    assert!(err.contains("services: bookstore.v1.Bookstore, echo.v1.EchoService"), "{err}");
    let rendered = std::fs::read_to_string(c.root.join("rust-grpc-proxy-run/envoy.json")).unwrap();
    assert!(rendered.contains(&format!("\"name\":\"{filter}\"")), "{filter} not in {rendered}");
    check_rest_and_native_grpc(rest, admin, &c.root);
}

/// Descriptor source reflection from the label alone: the webhook's default is
/// reflection, the pod has nothing but `rustGrpcProxyEnable`. As in a pod, the sidecar
/// starts before the app: it is ready (Envoy runs) and answers REST with a 503 JSON
/// status until the app is up and its reflection service read; then REST and native
/// gRPC work as with a mounted set. The runtime is the default, the dynamic module.
#[test]
fn label_only_pod_with_reflection_default_serves_rest_from_the_apps_reflection() {
    // The module fetches once, on Envoy's main thread, for every worker.
    reflection_serves_rest("reflection", &[], "envoy.filters.http.dynamic_modules", 1);
}

/// The same pod annotated `runtime: wasm`: the Wasm filter and its companion read the
/// app's reflection service (each VM on its own: two workers and the main thread).
#[test]
fn reflection_pod_annotated_wasm_serves_rest_from_the_apps_reflection() {
    reflection_serves_rest("reflection-wasm", &[("rust-grpc-proxy/runtime", "wasm")], "envoy.filters.http.lua", 3);
}

/// A pod with only the label and `annotations`, from a webhook whose default source is
/// reflection; `filter` must be in the rendered configuration, and `loads` log lines
/// must say the set was loaded before the REST checks run.
fn reflection_serves_rest(name: &str, annotations: &[(&str, &str)], filter: &str, loads: usize) {
    let Some([envoy, wasm, example, descriptors]) = real_inputs() else { return };
    let grpc = free_port();
    // Free ports through the webhook's flags, so that the pod itself stays label-only.
    let cfg = InjectorConfig {
        default_source: DefaultSource::Reflection,
        rest_port: free_port(),
        health_port: free_port(),
        admin_port: free_port(),
        ..InjectorConfig::default()
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut r: Value = serde_json::from_slice(&std::fs::read(dir.join("bare-pod-label-only.json")).unwrap()).unwrap();
    r["request"]["object"]["metadata"]["labels"]["rustGrpcProxyEnable"] = json!(grpc.to_string());
    assert_eq!(r["request"]["object"]["metadata"]["labels"].as_object().unwrap().len(), 1);
    assert!(r["request"]["object"]["metadata"].get("annotations").is_none());
    if !annotations.is_empty() {
        let map: serde_json::Map<String, Value> = annotations.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        r["request"]["object"]["metadata"]["annotations"] = Value::Object(map);
    }
    let d = review(&serde_json::to_vec(&r).unwrap(), &cfg);
    assert_eq!(d.verdict, "injected", "{}", d.reason);
    let mut pod = r["request"]["object"].clone();
    json_patch::patch(&mut pod, &response_patch(&d.review).unwrap().unwrap()).unwrap();
    assert_eq!(pod["spec"]["volumes"].as_array().unwrap().len(), 1, "only the emptyDir: {}", pod["spec"]["volumes"]);
    let c = as_kubelet_would(&pod, name, &envoy, &wasm, &descriptors);
    assert!(!c.command.iter().any(|a| a == "--descriptor"), "{:?}", c.command);

    let mut procs = Kill(Vec::new());
    procs.0.push(spawn_sidecar(&c));
    wait_ready(&c, &mut procs.0[0]);
    let err = std::fs::read_to_string(c.root.join("sidecar.err")).unwrap();
    assert!(err.contains("no descriptor file; the filter reads the descriptors from gRPC server reflection"), "{err}");
    let rendered = std::fs::read_to_string(c.root.join("rust-grpc-proxy-run/envoy.json")).unwrap();
    assert!(rendered.contains(&format!("\"name\":\"{filter}\"")), "{filter} not in {rendered}");

    // Before the app is up: REST gets the filter's 503 with a JSON status that says why.
    let base = format!("http://127.0.0.1:{}", cfg.rest_port);
    let (out, e) = curl(&["-i", &format!("{base}/v1/shelves")]);
    assert!(out.starts_with("HTTP/1.1 503"), "before the app: {out} {e}");
    assert!(
        out.contains(r#""code":14"#) && out.contains("no descriptor set loaded yet from gRPC server reflection"),
        "{out}"
    );

    // The app starts; the filter retries every second: bounded wait for the first load.
    procs.0.push(spawn_example(&example, grpc, &["--reflection"]));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, _) = curl(&["-o", "/dev/null", "-w", "%{http_code}", &format!("{base}/v1/shelves")]);
        if code == "200" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "REST still {code} 20 s after the app started:\n{}",
            std::fs::read_to_string(c.root.join("sidecar.err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // Wait until every loader has the set: the module's one fetcher, or each Wasm VM on
    // its own tick (concurrency 2 + main).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let err = std::fs::read_to_string(c.root.join("sidecar.err")).unwrap_or_default();
        let loaded = err.matches("from gRPC server reflection on cluster \"app\" (sha256").count();
        if loaded >= loads {
            let line = err.lines().find(|l| l.contains("(sha256")).unwrap_or_default();
            assert!(line.contains("bookstore.v1.Bookstore") && line.contains("echo.v1.EchoService"), "{line}");
            assert!(!line.contains("grpc.reflection"), "gRPC's own services are not transcoded: {line}");
            break;
        }
        assert!(Instant::now() < deadline, "{loaded} of {loads} loads of the set:\n{err}");
        std::thread::sleep(Duration::from_millis(250));
    }
    check_rest_and_native_grpc(cfg.rest_port, cfg.admin_port, &c.root);
}

/// An option value the filter refuses: Envoy exits at start (the container fails, and
/// FallbackToLogsOnError puts Envoy's message, naming the field, into the pod's status).
#[test]
fn refused_filter_option_stops_the_sidecar_with_the_field_named() {
    let Some([envoy, wasm, _, descriptors]) = real_inputs() else { return };
    let pod = patched_pod(
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        &[("rust-grpc-proxy/transcoder-options", r#"{"max_request_body_size": "lots"}"#)],
    );
    let c = as_kubelet_would(&pod, "refused", &envoy, &wasm, &descriptors);
    let mut child = Command::new(&c.command[0])
        .args(&c.command[1..])
        .env_clear()
        .envs(c.env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(c.root.join("sidecar.err")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("Envoy kept running with a refused filter configuration");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let err = std::fs::read_to_string(c.root.join("sidecar.err")).unwrap();
    assert!(err.contains("configuration field `max_request_body_size`"), "{err}");
}

/// The startup step's answer when the ConfigMap lacks the key: it says what is there.
#[test]
fn sidecar_step_names_the_keys_when_the_descriptor_is_missing() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sidecar-missing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("descriptor/..2026_11_22")).unwrap();
    std::fs::write(root.join("descriptor/other.pb"), b"x").unwrap();
    let pod = patched_pod(50051, 6789, 6790, 9901, &[]);
    let sidecar = &pod["spec"]["initContainers"][0];
    let bootstrap = sidecar["env"][0]["value"].as_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rgp-injector"))
        .args(["sidecar", "--descriptor"])
        .arg(root.join("descriptor/bookstore.pb"))
        .arg("--config-out")
        .arg(root.join("envoy.json"))
        .args(["--", "/bin/false"])
        .env("RGP_ENVOY_BOOTSTRAP", bootstrap)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the volume holds: [other.pb]"), "{err}");
    assert!(!root.join("envoy.json").exists());
}
