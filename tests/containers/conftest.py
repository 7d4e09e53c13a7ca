"""Session fixtures of the container tests: the images `make image` built, the webhook
running from the sidecar image the way deploy/injector.yaml runs it, the example's
descriptor ConfigMap written by `rgp publish`.

Run with `make test-containers` (builds the images first), or after `make image`:
    .venv/bin/python -m pytest tests/containers -k webhook
Logs and the manifests given to podman: build/containers/ (kept after the session).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import uuid

import pytest

import pods
from pods import OUT_DIR, PREFIX, REPO, KubePlay, podman

SVC = "rust-grpc-proxy-injector"
NS = "rust-grpc-proxy-system"
SVC_HOST = f"{SVC}.{NS}.svc"


@pytest.fixture(scope="session", autouse=True)
def out_dir():
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)
    return OUT_DIR


@pytest.fixture(scope="session", autouse=True)
def images():
    """The images must exist: this suite tests them, it does not build them."""
    missing = [i for i in (pods.IMAGE, pods.EXAMPLE_IMAGE, pods.WASM_IMAGE)
               if podman("image", "exists", i, check=False).returncode != 0]
    if missing:
        pytest.fail(f"images missing from podman's store: {', '.join(missing)} (make image builds them)",
                    pytrace=False)


class Webhook:
    """rgp-injector serve in a pod of its own, reached over HTTPS on 127.0.0.1:port under
    the Service's DNS name (curl --resolve), verified against the CA of deploy/gen-certs.sh."""

    def __init__(self, play: KubePlay, port: int, certs, path: str, deployment: dict, probes: dict):
        self.play = play
        self.port = port
        self.certs = certs
        self.path = path
        self.deployment = deployment
        self.probes = probes
        self.pod = play.pods[0]
        self.container = play.container(self.pod, "injector")

    def url(self, path: str) -> str:
        return f"https://{SVC_HOST}:{self.port}{path}"

    def curl(self, *args: str) -> subprocess.CompletedProcess:
        return pods.curl("--cacert", str(self.certs / "ca.crt"), "--resolve", f"{SVC_HOST}:{self.port}:127.0.0.1",
                         *args)

    def get(self, path: str) -> tuple[int, str]:
        p = self.curl("-o", "-", "-w", "\n%{http_code}", self.url(path))
        if p.returncode != 0:
            raise ConnectionError(p.stderr.strip())
        body, _, code = p.stdout.rpartition("\n")
        return int(code), body

    def review(self, pod: dict, namespace: str) -> dict:
        """POST an AdmissionReview (CREATE of `pod`) as the API server would; the response."""
        uid = str(uuid.uuid4())
        review = {
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": namespace, "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": pod, "oldObject": None, "dryRun": False,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
            },
        }
        p = subprocess.run(
            ["curl", "-sS", "--max-time", "20", "--cacert", str(self.certs / "ca.crt"),
             "--resolve", f"{SVC_HOST}:{self.port}:127.0.0.1", "-X", "POST",
             "-H", "content-type: application/json", "--data-binary", "@-", "-w", "\n%{http_code}",
             self.url(self.path + "?timeout=10s")],
            input=json.dumps(review), capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        body, _, code = p.stdout.rpartition("\n")
        assert code == "200", f"{code}: {body}"
        answer = json.loads(body)
        assert answer["kind"] == "AdmissionReview" and answer["response"]["uid"] == uid, answer
        return answer["response"]


@pytest.fixture(scope="session")
def webhook(out_dir):
    """deploy/injector.yaml's Deployment run by kube play: its image, command, args,
    securityContext, user and Secret volume as written; what this engine cannot take is
    changed and listed here: the Secret volume becomes a ConfigMap volume with the same
    files (pods.secrets_as_configmaps says why), replicas 1 (kube play makes a pod per replica, and they would
    share one hostPort), the https port published on 127.0.0.1 by hostPort, probes
    removed (test_webhook calls their endpoints), unique names."""
    certs = out_dir / "webhook-certs"
    subprocess.run([str(REPO / "deploy" / "gen-certs.sh"), "--no-apply"], check=True, capture_output=True,
                   env={**os.environ, "RGP_CERT_DIR": str(certs)}, timeout=60)
    config = pods.load_manifests(certs / "webhook.yaml")[0]
    hook = config["webhooks"][0]["clientConfig"]
    assert base64.b64decode(hook["caBundle"]) == (certs / "ca.crt").read_bytes()
    assert (hook["service"]["name"], hook["service"]["namespace"]) == (SVC, NS)

    docs = pods.load_manifests(REPO / "deploy" / "injector.yaml")
    deployment = pods.find(docs, "Deployment", SVC)
    original = json.loads(json.dumps(deployment))
    name = f"{PREFIX}-injector"
    secret_name = f"{PREFIX}-injector-tls"
    deployment["metadata"]["name"] = name
    deployment["spec"]["replicas"] = 1
    spec = deployment["spec"]["template"]["spec"]
    (tls_volume,) = [v for v in spec["volumes"] if v["name"] == "tls"]
    assert tls_volume["secret"]["secretName"] == "rust-grpc-proxy-injector-tls"
    tls_volume["secret"]["secretName"] = secret_name
    probes = pods.strip_probes(spec)
    port = pods.free_port()
    (container,) = spec["containers"]
    pods.publish(container, 8443, port)
    secret = {  # what `kubectl create secret tls` (gen-certs.sh) stores
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": secret_name, "namespace": NS},
        "data": {k: base64.b64encode((certs / k).read_bytes()).decode() for k in ("tls.crt", "tls.key")},
    }
    maps = pods.secrets_as_configmaps(spec, [secret])
    with KubePlay(name, [deployment], configmap_docs=maps) as play:
        hook_ = Webhook(play, port, certs, hook["service"]["path"], original, probes)
        try:
            pods.wait_until(lambda: hook_.get("/readyz")[0] == 200, pods.START_TIMEOUT,
                            f"webhook readiness on {hook_.url('/readyz')}")
        except AssertionError as exc:
            pytest.fail(f"{exc}\nwebhook log:\n{play.logs(hook_.container)}", pytrace=False)
        yield hook_


@pytest.fixture(scope="session")
def descriptor_configmap(out_dir):
    """The example's ConfigMap as `rgp publish` writes it (deploy/example/echo.yaml's header),
    named for this run (kube play keeps a volume per ConfigMap name): (path, name, sha256)."""
    out = out_dir / "k8s"
    name = f"{PREFIX}-descriptors"
    subprocess.run([str(pods.RGP), "publish", str(pods.DESCRIPTORS), "--name", name,
                    "--namespace", "rgp-demo", "-o", str(out)], check=True, capture_output=True, timeout=60)
    path = out / f"{name}.configmap.yaml"
    assert path.exists(), sorted(p.name for p in out.iterdir())
    (cm,) = pods.load_manifests(path)
    return path, name, cm["metadata"]["annotations"]["rust-grpc-proxy/descriptor-sha256"]
