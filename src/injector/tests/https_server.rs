//! The webhook's HTTPS server end to end on 127.0.0.1: the real binary (`rgp-injector
//! serve`) with certificates generated here (rcgen, ring), called by curl verifying against
//! the test CA, as the API server does with the webhook's caBundle. Then the certificate
//! files are swapped while it runs (as a Secret volume update or cert-manager renewal
//! does) and new connections must get the new certificate; a broken pair must not replace
//! a good one; SIGTERM turns readiness off, then the server stops.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// Held by the load test and by the test that needs a prompt answer within 2 s
/// (readiness during the shutdown delay), so the two never run at the same time.
static TIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Server {
    child: Child,
    port: u16,
    log: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a serving certificate for localhost/127.0.0.1 it signed: (ca.pem, cert.pem, key.pem).
fn pki(cn: &str) -> (String, String, String) {
    pki_valid(cn, None)
}

/// Same, the serving certificate valid only from..until the given years (UTC), if given.
fn pki_valid(cn: &str, years: Option<(i32, i32)>) -> (String, String, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, format!("{cn} test CA"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    if let Some((from, until)) = years {
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
    }
    let cert = params.signed_by(&key, &ca).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// Write like the kubelet updates a Secret volume: new file, then rename over the old one.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn start(dir: &Path, shutdown_delay: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rgp-injector"))
        .args(["serve", "--listen", "127.0.0.1:0", "--cert-reload-interval", "0.1", "--shutdown-delay", shutdown_delay])
        .arg("--tls-cert")
        .arg(dir.join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.join("tls.key"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr: ChildStderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("server: {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut server = Server { child, port: 0, log: rx }; // killed on drop, even if this panics
    let first = server.log.recv_timeout(Duration::from_secs(10)).expect("the server logs its address");
    // msg="listening on 127.0.0.1:PORT" version=...
    let addr = first.split("listening on ").nth(1).unwrap_or_else(|| panic!("unexpected first line: {first}"));
    let addr = addr.split(['"', ' ']).next().unwrap();
    server.port = addr.rsplit(':').next().unwrap().parse().unwrap_or_else(|_| panic!("no port in {first}"));
    server
}

/// curl over TLS trusting only `ca`: (HTTP status or 0, body, curl's error text).
fn curl(ca: &Path, url: &str, extra: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(ca)
        .args(["-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    (code.trim().parse().unwrap_or(0), body.to_string(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn https_mutate_health_and_certificate_swap() {
    let dir = tmp("https");
    let (ca1, cert1, key1) = pki("webhook-one");
    let (ca2, cert2, key2) = pki("webhook-two");
    std::fs::write(dir.join("ca1.pem"), &ca1).unwrap();
    std::fs::write(dir.join("ca2.pem"), &ca2).unwrap();
    std::fs::write(dir.join("tls.crt"), &cert1).unwrap();
    std::fs::write(dir.join("tls.key"), &key1).unwrap();
    let server = start(&dir, "0");
    let base = format!("https://localhost:{}", server.port);
    let (ca1p, ca2p) = (dir.join("ca1.pem"), dir.join("ca2.pem"));

    assert_eq!(curl(&ca1p, &format!("{base}/healthz"), &[]).0, 200);
    assert_eq!(curl(&ca1p, &format!("{base}/readyz"), &[]).0, 200);
    assert_eq!(curl(&ca1p, &format!("{base}/mutate"), &[]).0, 405);
    assert_eq!(curl(&ca1p, &format!("{base}/nope"), &[]).0, 404);
    // TLS verification is real: the other CA is refused.
    let (code, _, err) = curl(&ca2p, &format!("{base}/healthz"), &[]);
    assert_eq!(code, 0, "{err}");

    // A review through HTTPS, as the API server sends it.
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/deployment-generatename.json");
    let data = format!("@{}", case.display());
    let (code, body, err) =
        curl(&ca1p, &format!("{base}/mutate"), &["-H", "Content-Type: application/json", "--data-binary", &data]);
    assert_eq!(code, 200, "{err}");
    let review: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(review["response"]["uid"], "4b1c2f7e-9d0a-4c55-8f0e-1a2b3c4d5e01");
    assert_eq!(review["response"]["allowed"], true);
    assert!(rgp_injector::admission::response_patch(&review).unwrap().is_some());
    // Garbage gets an AdmissionReview error, not a bare 500.
    let (code, body, _) = curl(&ca1p, &format!("{base}/mutate"), &["--data-binary", "{not json"]);
    assert_eq!(code, 200);
    let review: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(review["response"]["allowed"], false);
    assert!(review["response"]["status"]["message"].as_str().unwrap().contains("not JSON"));
    // The log names the pod (generateName*) and namespace, nothing of the spec.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut logged = Vec::new();
    while Instant::now() < deadline && !logged.iter().any(|l: &String| l.contains("verdict=injected")) {
        if let Ok(l) = server.log.recv_timeout(Duration::from_millis(100)) {
            logged.push(l);
        }
    }
    let line = logged.iter().find(|l| l.contains("verdict=injected")).expect("an admission log line");
    assert!(line.contains("namespace=shop") && line.contains("pod=bookstore-7c9f8d6b5-*"), "{line}");
    assert!(
        !line.contains("registry.example") && !line.contains("50051/") && !line.contains("kube-api-access"),
        "{line}"
    );

    // Swap the certificate while running: new connections get the new one.
    write_atomic(&dir.join("tls.key"), &key2);
    write_atomic(&dir.join("tls.crt"), &cert2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl(&ca2p, &format!("{base}/healthz"), &[]).0 != 200 {
        assert!(Instant::now() < deadline, "the new certificate was not picked up");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(curl(&ca1p, &format!("{base}/healthz"), &[]).0, 0, "the old certificate is still served");

    // A broken pair (say, caught half-written) does not replace the good certificate.
    write_atomic(&dir.join("tls.crt"), &cert1); // cert1 with key2: mismatch
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(curl(&ca2p, &format!("{base}/healthz"), &[]).0, 200);
    write_atomic(&dir.join("tls.crt"), "-----BEGIN CERTIFICATE-----\ngarbage\n");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(curl(&ca2p, &format!("{base}/healthz"), &[]).0, 200);
    // ...and the next good pair is picked up again.
    write_atomic(&dir.join("tls.key"), &key1);
    write_atomic(&dir.join("tls.crt"), &cert1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl(&ca1p, &format!("{base}/healthz"), &[]).0 != 200 {
        assert!(Instant::now() < deadline, "the restored certificate was not picked up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigterm_turns_readiness_off_then_stops() {
    let _serial = TIMING.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tmp("https-stop");
    let (ca, cert, key) = pki("webhook-stop");
    std::fs::write(dir.join("ca.pem"), &ca).unwrap();
    std::fs::write(dir.join("tls.crt"), &cert).unwrap();
    std::fs::write(dir.join("tls.key"), &key).unwrap();
    let mut server = start(&dir, "2");
    let base = format!("https://localhost:{}", server.port);
    let cap = dir.join("ca.pem");
    assert_eq!(curl(&cap, &format!("{base}/readyz"), &[]).0, 200);
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut saw_503 = false;
    while Instant::now() < deadline && !saw_503 {
        saw_503 = curl(&cap, &format!("{base}/readyz"), &[]).0 == 503;
    }
    assert!(saw_503, "readiness did not turn 503 during the shutdown delay");
    assert_eq!(curl(&cap, &format!("{base}/healthz"), &[]).0, 200, "still serving during the delay");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn refuses_to_start_without_a_usable_certificate() {
    let dir = tmp("https-bad");
    std::fs::write(dir.join("tls.crt"), "not a certificate").unwrap();
    std::fs::write(dir.join("tls.key"), "not a key").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rgp-injector"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(dir.join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.join("tls.key"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate"), "{err}");
}

/// An expired certificate (a renewal that did not happen): the server still starts and
/// serves it, the API server's TLS check refuses it (so with `failurePolicy: Fail`
/// labelled pods are refused, not created without their sidecar), and the renewed
/// certificate, once written, is served without a restart.
#[test]
fn expired_certificate_then_renewal() {
    let dir = tmp("https-expired");
    let (ca, cert, key) = pki_valid("webhook-expired", Some((2020, 2021)));
    std::fs::write(dir.join("ca.pem"), &ca).unwrap();
    std::fs::write(dir.join("tls.crt"), &cert).unwrap();
    std::fs::write(dir.join("tls.key"), &key).unwrap();
    let server = start(&dir, "0");
    let base = format!("https://localhost:{}", server.port);
    let cap = dir.join("ca.pem");
    let (code, _, err) = curl(&cap, &format!("{base}/healthz"), &[]);
    assert_eq!(code, 0, "an expired certificate must fail verification");
    assert!(err.contains("expired"), "{err}");
    // The renewed pair (pki makes a new CA each time, so trust the renewal's own CA):
    // new connections get it.
    let (ca2, cert2, key2) = pki("webhook-renewed");
    std::fs::write(dir.join("ca2.pem"), &ca2).unwrap();
    write_atomic(&dir.join("tls.key"), &key2);
    write_atomic(&dir.join("tls.crt"), &cert2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl(&dir.join("ca2.pem"), &format!("{base}/healthz"), &[]).0 != 200 {
        assert!(Instant::now() < deadline, "the renewed certificate was not picked up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// POSTs every body file to `url` with one curl process (`--parallel`, 16 transfers at
/// once, as an API server with several workers would): (HTTP status, seconds, answer) per
/// body, in the order given.
fn curl_parallel(ca: &Path, url: &str, bodies: &[PathBuf], out: &Path) -> Vec<(u16, f64, String)> {
    // `next` resets per-transfer options, so each transfer states all of its own.
    let mut config = String::new();
    for (i, body) in bodies.iter().enumerate() {
        if i > 0 {
            config.push_str("next\n"); // a `next` after the last transfer would start one without a URL
        }
        config.push_str(&format!(
            "url = \"{url}\"\ncacert = \"{}\"\nheader = \"Content-Type: application/json\"\nmax-time = 30\n\
             data-binary = \"@{}\"\noutput = \"{}\"\nwrite-out = \"%{{http_code}} %{{time_total}} %{{filename_effective}}\\n\"\n",
            ca.display(),
            body.display(),
            out.join(format!("answer-{i}")).display()
        ));
    }
    let list = out.join("curl.config");
    std::fs::write(&list, config).unwrap();
    let result = Command::new("curl")
        .args(["-sS", "--parallel", "--parallel-max", "16", "-K"])
        .arg(&list)
        .output()
        .expect("curl runs");
    let mut answers = vec![(0u16, 0f64, String::new()); bodies.len()];
    let report = String::from_utf8_lossy(&result.stdout);
    assert!(
        report.lines().count() == bodies.len(),
        "curl reported {} of {} transfers: {}\n{}",
        report.lines().count(),
        bodies.len(),
        report.lines().take(5).collect::<Vec<_>>().join("\n"),
        String::from_utf8_lossy(&result.stderr).lines().take(10).collect::<Vec<_>>().join("\n")
    );
    for line in report.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(code), Some(secs), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Some(i) = file.rsplit("answer-").next().and_then(|n| n.parse::<usize>().ok()) else {
            continue;
        };
        let body = std::fs::read_to_string(file).unwrap_or_default();
        answers[i] = (code.parse().unwrap_or(0), secs.parse().unwrap_or(0.0), body);
    }
    let failed = answers.iter().filter(|a| a.0 == 0).count();
    assert!(
        failed == 0,
        "{failed} transfers failed: {}",
        String::from_utf8_lossy(&result.stderr)
            .lines()
            .filter(|l| l.starts_with("curl:"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    answers
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p / 100.0).round() as usize]
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A flood of invalid reviews (not JSON, nested 100 000 deep, 1 MB of garbage, wrong
/// kinds, a pod that is no pod, ...) then a load of valid ones, 16 at a time: every
/// invalid review gets a 200 AdmissionReview that refuses it with a reason, every
/// valid one its patch, the server stays healthy and its memory bounded. Prints the
/// latency figures of the valid load (not asserted: speed belongs in benchmarks).
#[test]
fn invalid_reviews_at_a_high_rate_then_a_load_of_valid_ones() {
    let _serial = TIMING.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tmp("https-load");
    let (ca, cert, key) = pki("webhook-load");
    std::fs::write(dir.join("ca.pem"), &ca).unwrap();
    std::fs::write(dir.join("tls.crt"), &cert).unwrap();
    std::fs::write(dir.join("tls.key"), &key).unwrap();
    let server = start(&dir, "0");
    let url = format!("https://localhost:{}/mutate", server.port);
    let cap = dir.join("ca.pem");
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");

    let mut invalid: Vec<(String, Vec<u8>)> = vec![
        ("not JSON".into(), b"{not json".to_vec()),
        ("empty".into(), Vec::new()),
        ("nested 100000 deep".into(), [b"[".repeat(100_000), b"]".repeat(100_000)].concat()),
        ("1 MB string".into(), format!("{{\"kind\": \"{}\"}}", "x".repeat(1 << 20)).into_bytes()),
        ("binary".into(), (0..=255u8).cycle().take(50_000).collect()),
        ("a JSON number".into(), b"12345678901234567890123456789".to_vec()),
        ("an object".into(), b"{}".to_vec()),
        ("invalid UTF-8".into(), b"{\"kind\": \"\xff\xfe\"}".to_vec()),
    ];
    for case in ["malformed-no-request", "malformed-not-json", "malformed-pod", "malformed-v1beta1", "not-a-pod"] {
        invalid.push((case.into(), std::fs::read(cases.join(format!("{case}.json"))).unwrap()));
    }
    let mut bodies = Vec::new();
    let mut names = Vec::new();
    for (i, (name, body)) in invalid.iter().enumerate() {
        let path = dir.join(format!("invalid-{i}.json"));
        std::fs::write(&path, body).unwrap();
        for _ in 0..100 {
            bodies.push(path.clone());
            names.push(name.clone());
        }
    }
    let rss_before = rss_kb(server.child.id());
    let out = dir.join("invalid-answers");
    std::fs::create_dir_all(&out).unwrap();
    let answers = curl_parallel(&cap, &url, &bodies, &out);
    for ((code, _, body), name) in answers.iter().zip(&names) {
        assert_eq!(*code, 200, "{name}: {body}");
        let review: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{name}: {e}: {body}"));
        assert_eq!(review["response"]["allowed"], false, "{name}: {body}");
        assert_eq!(review["response"]["status"]["code"], 400, "{name}: {body}");
        assert!(review["response"]["status"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}: {body}");
    }

    let valid = cases.join("deployment-generatename.json");
    let bodies = vec![valid; 2000];
    let out = dir.join("valid-answers");
    std::fs::create_dir_all(&out).unwrap();
    let started = Instant::now();
    let answers = curl_parallel(&cap, &url, &bodies, &out);
    let elapsed = started.elapsed().as_secs_f64();
    for (code, _, body) in &answers {
        assert_eq!(*code, 200, "{body}");
        let review: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(review["response"]["allowed"], true, "{body}");
        assert!(rgp_injector::admission::response_patch(&review).unwrap().is_some(), "{body}");
    }
    let mut latencies: Vec<f64> = answers.iter().map(|a| a.1).collect();
    latencies.sort_by(f64::total_cmp);
    let rss_after = rss_kb(server.child.id());
    eprintln!(
        "injector load: {} valid reviews in {elapsed:.2}s ({:.0}/s, 16 concurrent, TLS), latency p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms; RSS {} kB before the {} invalid reviews, {} kB after the load",
        answers.len(),
        answers.len() as f64 / elapsed,
        percentile(&latencies, 50.0) * 1e3,
        percentile(&latencies, 99.0) * 1e3,
        percentile(&latencies, 100.0) * 1e3,
        rss_before,
        names.len(),
        rss_after
    );
    assert_eq!(curl(&cap, &format!("https://localhost:{}/healthz", server.port), &[]).0, 200);
    assert!(rss_after < rss_before + 100 * 1024, "RSS grew from {rss_before} kB to {rss_after} kB");
}
