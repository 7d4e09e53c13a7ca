"""rgp-injector serve from the sidecar image, run by podman kube play from deploy/injector.yaml
(its args, Secret volume, user and securityContext), reached over HTTPS from the host as
the API server reaches it: under the Service's DNS name, verified against the CA that
deploy/gen-certs.sh made and put into the webhook configuration's caBundle."""

from __future__ import annotations

import base64
import json
import socket
import ssl

import pods
from conftest import SVC_HOST


def test_probe_endpoints_answer(webhook):
    """The probes deploy/injector.yaml declares (podman runs none: they are called here, on
    their own path, port and scheme)."""
    assert set(webhook.probes) == {"injector/readinessProbe", "injector/livenessProbe"}, webhook.probes
    container = webhook.deployment["spec"]["template"]["spec"]["containers"][0]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    for key, probe in webhook.probes.items():
        get = probe["httpGet"]
        assert get["scheme"] == "HTTPS" and named[get["port"]] == 8443, (key, probe)
        status, body = webhook.get(get["path"])
        assert status == 200, (key, status, body)


def test_serves_the_mounted_certificate(webhook):
    """The certificate on the wire is tls.crt of the Secret, mounted where --tls-cert says."""
    ctx = ssl.create_default_context(cafile=str(webhook.certs / "ca.crt"))
    with socket.create_connection(("127.0.0.1", webhook.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=SVC_HOST) as tls:
            served = tls.getpeercert(binary_form=True)
    pem = (webhook.certs / "tls.crt").read_text()
    assert served == ssl.PEM_cert_to_DER_cert(pem)
    args = webhook.deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    mount = webhook.deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["mountPath"]
    assert f"--tls-cert={mount}/tls.crt" in args and f"--tls-key={mount}/tls.key" in args


def test_runs_as_the_manifest_says(webhook):
    """User, read-only root, no capabilities, no privilege escalation: read from the running
    process on the host, compared with deploy/injector.yaml."""
    spec = webhook.deployment["spec"]["template"]["spec"]
    ctx = spec["containers"][0]["securityContext"]
    state = pods.container_state(webhook.container)
    assert state["State"]["Running"], state["State"]
    assert state["HostConfig"]["ReadonlyRootfs"] is ctx["readOnlyRootFilesystem"] is True
    status = pods.host_pid_status(webhook.container)
    uid = str(spec["securityContext"]["runAsUser"])
    gid = str(spec["securityContext"]["runAsGroup"])
    assert status["Uid"].split() == [uid] * 4, status["Uid"]
    assert status["Gid"].split() == [gid] * 4, status["Gid"]
    assert int(status["CapEff"], 16) == 0 and ctx["capabilities"]["drop"] == ["ALL"]
    assert status["NoNewPrivs"] == "1"
    assert state["Config"]["Cmd"][0] == "serve" or "serve" in state["Args"]


def test_unlabelled_pod_is_admitted_unchanged(webhook):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain", "namespace": "default"},
           "spec": {"containers": [{"name": "app", "image": "app:1"}]}}
    response = webhook.review(pod, "default")
    assert response["allowed"] is True and "patch" not in response, response


def test_labelled_pod_gets_the_sidecar_of_the_image_it_runs_from(webhook):
    """The sidecar image the webhook writes (--sidecar-image in deploy/injector.yaml) is the
    image the webhook itself runs from, and is the image `make image` built."""
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "labelled", "namespace": "default", "labels": {"rustGrpcProxyEnable": "50051"},
                        "annotations": {"rust-grpc-proxy/descriptor-configmap": "example-descriptors"}},
           "spec": {"containers": [{"name": "app", "image": "app:1", "ports": [{"containerPort": 50051}]}]}}
    response = webhook.review(pod, "default")
    assert response["allowed"] is True and response["patchType"] == "JSONPatch", response
    patch = json.loads(base64.b64decode(response["patch"]))
    (sidecar,) = [op["value"] for op in patch if op["path"] == "/spec/initContainers"][0]
    container = webhook.deployment["spec"]["template"]["spec"]["containers"][0]
    assert f"--sidecar-image={sidecar['image']}" in container["args"]
    assert sidecar["image"] == container["image"]
    assert f"localhost/{sidecar['image']}" == pods.IMAGE
    running = pods.container_state(webhook.container)["ImageName"]
    assert running in (pods.IMAGE, sidecar["image"]), running
