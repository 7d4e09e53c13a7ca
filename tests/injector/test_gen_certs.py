"""deploy/gen-certs.sh, the way to run the webhook without cert-manager.

With --no-apply it only writes files; here they are checked as the API server would use
them: the rendered MutatingWebhookConfiguration is strictly valid and its caBundle is the
CA; rgp-injector serves with the certificate and curl, trusting only that CA, reaches it
by the Service's DNS name; a second run keeps the CA and renews the serving certificate.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
import kubernetes_validate

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy/gen-certs.sh"
INJECTOR = Path(os.environ.get("RGP_INJECTOR", ROOT / "target/debug/rgp-injector"))
SVC_HOST = "rust-grpc-proxy-injector.rust-grpc-proxy-system.svc"


def gen(tmp: Path) -> None:
    subprocess.run([str(SCRIPT), "--no-apply"], check=True, env={**os.environ, "RGP_CERT_DIR": str(tmp)},
                   capture_output=True, text=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.fail("openssl is needed by deploy/gen-certs.sh")
    d = tmp_path_factory.mktemp("certs")
    gen(d)
    return d


def test_rendered_webhook_is_valid_and_trusts_the_ca(certs: Path):
    doc = yaml.safe_load((certs / "webhook.yaml").read_text())
    kubernetes_validate.validate(doc, "1.37", strict=True)
    bundle = doc["webhooks"][0]["clientConfig"]["caBundle"]
    assert base64.b64decode(bundle) == (certs / "ca.crt").read_bytes()


def test_second_run_keeps_the_ca_and_renews_the_certificate(certs: Path, tmp_path: Path):
    for f in certs.iterdir():
        shutil.copy(f, tmp_path / f.name)
    ca, crt = (tmp_path / "ca.crt").read_bytes(), (tmp_path / "tls.crt").read_bytes()
    gen(tmp_path)
    assert (tmp_path / "ca.crt").read_bytes() == ca
    assert (tmp_path / "tls.crt").read_bytes() != crt
    subprocess.run(["openssl", "verify", "-CAfile", tmp_path / "ca.crt", tmp_path / "tls.crt"], check=True,
                   capture_output=True)


def test_injector_serves_the_certificate_under_the_service_name(certs: Path):
    if not INJECTOR.exists():
        pytest.fail(f"{INJECTOR} missing: cargo build -p rgp-injector (make test-injector does)")
    proc = subprocess.Popen([str(INJECTOR), "serve", "--listen", "127.0.0.1:0", "--tls-cert", certs / "tls.crt",
                             "--tls-key", certs / "tls.key", "--shutdown-delay", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", first)
        assert m, first
        port = m.group(1)
        deadline = time.time() + 10
        while True:
            out = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", certs / "ca.crt",
                                  "--resolve", f"{SVC_HOST}:{port}:127.0.0.1", f"https://{SVC_HOST}:{port}/healthz"],
                                 capture_output=True, text=True)
            if out.returncode == 0 or time.time() > deadline:
                break
            time.sleep(0.1)
        assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=15)
