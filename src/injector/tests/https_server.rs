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
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{cn} test CA"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
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
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--cert-reload-interval",
            "0.1",
            "--shutdown-delay",
            shutdown_delay,
        ])
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
    let mut server = Server {
        child,
        port: 0,
        log: rx,
    }; // killed on drop, even if this panics
    let first = server
        .log
        .recv_timeout(Duration::from_secs(10))
        .expect("the server logs its address");
    // msg="listening on 127.0.0.1:PORT" version=...
    let addr = first
        .split("listening on ")
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected first line: {first}"));
    let addr = addr.split(['"', ' ']).next().unwrap();
    server.port = addr
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no port in {first}"));
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
    (
        code.trim().parse().unwrap_or(0),
        body.to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
    let (code, body, err) = curl(
        &ca1p,
        &format!("{base}/mutate"),
        &["-H", "Content-Type: application/json", "--data-binary", &data],
    );
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
    assert!(review["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("not JSON"));
    // The log names the pod (generateName*) and namespace, nothing of the spec.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut logged = Vec::new();
    while Instant::now() < deadline && !logged.iter().any(|l: &String| l.contains("verdict=injected")) {
        if let Ok(l) = server.log.recv_timeout(Duration::from_millis(100)) {
            logged.push(l);
        }
    }
    let line = logged
        .iter()
        .find(|l| l.contains("verdict=injected"))
        .expect("an admission log line");
    assert!(
        line.contains("namespace=shop") && line.contains("pod=bookstore-7c9f8d6b5-*"),
        "{line}"
    );
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
    assert_eq!(
        curl(&ca1p, &format!("{base}/healthz"), &[]).0,
        0,
        "the old certificate is still served"
    );

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
    assert_eq!(
        curl(&cap, &format!("{base}/healthz"), &[]).0,
        200,
        "still serving during the delay"
    );
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
