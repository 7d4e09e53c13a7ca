"""deploy/gateway/gateway.yaml's Deployment run by podman kube play: Envoy from the sidecar
image with the config `rgp envoy` writes from envoy/gateway/gateway.yaml, TLS with a
required client certificate, the ConfigMap and the certificate files mounted where the
manifest mounts them.

What kube play cannot model is replaced, and only that:
  - the backends are Services (bookstore, greeter-v1, greeter-v2, chat) in a cluster; here
    they are extra containers of the gateway's pod (a pod has no DNS for Services), so the
    description's backend addresses become 127.0.0.1:<port>; everything else of
    envoy/gateway/gateway.yaml (listener, health listener, admin, TLS files, routes,
    canary, retries, health checks, the filter's options) is used as written;
  - the Secret volume becomes a ConfigMap volume holding the same files
    (pods.secrets_as_configmaps: podman 4.3 cannot mount Secrets);
  - the probes are called by the tests, replicas is 1, names are unique, the https and
    health ports are published on 127.0.0.1 (hostPort).
Backends: the example image (bookstore.v1 + echo.v1), tests/gateway's greeter (v1 and
its v2 canary, Python grpcio with reflection) and WebSocket echo server, in the image
backends.python_image() puts together.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys

import grpc
import pytest
import urllib3
import yaml
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from websockets.sync.client import connect

import backends
import pods
from pods import PREFIX, REPO, KubePlay

sys.path.insert(0, str(REPO / "tests" / "gateway"))
from gateway import SERVER_NAME, Certs  # noqa: E402  (tests/gateway/gateway.py)

BACKENDS = {"bookstore": 50051, "greeter-v1": 50052, "greeter-v2": 50053, "chat": 8080}


def description() -> dict:
    """envoy/gateway/gateway.yaml with the Services' addresses replaced by the pod's own
    containers, and its descriptor paths made absolute (it is written elsewhere)."""
    src = REPO / "envoy" / "gateway" / "gateway.yaml"
    desc = yaml.safe_load(src.read_text())
    for g in desc["grpc"]:
        g["descriptor"] = str((src.parent / g["descriptor"]).resolve())
        host = g["backend"].split(".")[0]
        g["backend"] = f"127.0.0.1:{BACKENDS[host]}"
        if "canary" in g:
            g["canary"]["backend"] = f"127.0.0.1:{BACKENDS[g['canary']['backend'].split('.')[0]]}"
    for w in desc["websockets"]:
        w["backend"] = f"127.0.0.1:{BACKENDS[w['backend'].split('.')[0]]}"
    return desc


def backend_containers(python_image: str) -> list[dict]:
    def py(name, *args):
        return {"name": name, "image": python_image, "command": ["/usr/bin/python3", *args],
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}}}
    greeter = ["/srv/greeter_server.py", "--descriptor", "/srv/greeter.pb"]
    return [
        {"name": "bookstore", "image": pods.EXAMPLE_IMAGE.removeprefix("localhost/"),
         "command": ["/usr/local/bin/example-service"],
         "args": ["serve", "--listen", f"127.0.0.1:{BACKENDS['bookstore']}"],
         "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                             "capabilities": {"drop": ["ALL"]}}},
        py("greeter-v1", *greeter, "--listen", f"127.0.0.1:{BACKENDS['greeter-v1']}", "--version", "v1"),
        py("greeter-v2", *greeter, "--listen", f"127.0.0.1:{BACKENDS['greeter-v2']}", "--version", "v2"),
        py("chat", "/srv/ws_echo_server.py", "--listen", f"127.0.0.1:{BACKENDS['chat']}"),
    ]


class GatewayPod:
    def __init__(self, play, certs, https, health, probes, deployment):
        self.play, self.certs, self.https, self.health = play, certs, https, health
        self.probes, self.deployment = probes, deployment
        self.pod = play.pods[0]
        self.seen: set[str] = set()

    def logs(self) -> str:
        return "\n".join(f"--- {c}\n{self.play.logs(self.play.container(self.pod, c))[-3000:]}"
                         for c in ["envoy", *BACKENDS])

    def request(self, method: str, path: str, body: dict | None = None, client: str | None = "good"):
        ctx = self.certs.context(client, ["http/1.1"])
        pool = urllib3.HTTPSConnectionPool("127.0.0.1", self.https, ssl_context=ctx, server_hostname=SERVER_NAME,
                                           assert_hostname=SERVER_NAME, retries=False, timeout=15)
        headers = {"host": f"{SERVER_NAME}:{self.https}"}
        if body is not None:
            headers["content-type"] = "application/json"
        try:
            r = pool.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                             headers=headers)
            return r.status, r.data
        finally:
            pool.close()

    def greeter_versions(self) -> set[str]:
        """Versions that answered so far (the canary takes 10 % of the calls)."""
        status, body = self.request("POST", "/greeter/v1/hello", {"name": "warm-up"})
        if status == 200:
            self.seen.add(json.loads(body)["version"])
        return self.seen

    def channel(self) -> grpc.Channel:
        creds = grpc.ssl_channel_credentials(root_certificates=self.certs.ca.read_bytes(),
                                             private_key=self.certs.client_key.read_bytes(),
                                             certificate_chain=self.certs.client_cert.read_bytes())
        return grpc.secure_channel(f"127.0.0.1:{self.https}", creds,
                                   options=[("grpc.ssl_target_name_override", SERVER_NAME),
                                            ("grpc.default_authority", SERVER_NAME)])


@pytest.fixture(scope="module")
def gateway():
    out = pods.OUT_DIR / "gateway"
    out.mkdir(parents=True, exist_ok=True)
    certs = Certs(out / "certs").make()
    desc_path = out / "gateway.yaml"
    desc_path.write_text(yaml.safe_dump(description(), sort_keys=False))
    config = out / "gateway.envoy.yaml"
    subprocess.run([str(pods.RGP), "envoy", "--description", str(desc_path), "--out", str(config)],
                        check=True, capture_output=True, timeout=60)

    docs = pods.load_manifests(REPO / "deploy" / "gateway" / "gateway.yaml")
    deployment = pods.find(docs, "Deployment", "rust-grpc-proxy-gateway")
    original = json.loads(json.dumps(deployment))
    name = f"{PREFIX}-gateway"
    deployment["metadata"]["name"] = name
    deployment["spec"]["replicas"] = 1
    spec = deployment["spec"]["template"]["spec"]
    (envoy,) = spec["containers"]
    assert f"localhost/{envoy['image']}" == pods.IMAGE
    volumes = {v["name"]: v for v in spec["volumes"]}
    cm_name = f"{PREFIX}-gateway-config"
    assert volumes["config"]["configMap"]["name"] == "rust-grpc-proxy-gateway"
    volumes["config"]["configMap"]["name"] = cm_name
    secret_name = f"{PREFIX}-gateway-tls"
    assert volumes["tls"]["secret"]["secretName"] == "rust-grpc-proxy-gateway-tls"
    volumes["tls"]["secret"]["secretName"] = secret_name
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret_name},
              "data": {k: base64.b64encode(p.read_bytes()).decode()
                       for k, p in (("tls.crt", certs.server_cert), ("tls.key", certs.server_key),
                                    ("ca.crt", certs.ca))}}
    maps = pods.secrets_as_configmaps(spec, [secret])
    maps.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": cm_name},
                 "data": {"envoy.yaml": config.read_text()}})
    probes = pods.strip_probes(spec)
    named = {p["name"]: p["containerPort"] for p in envoy["ports"]}
    https, health = pods.free_port(), pods.free_port()
    pods.publish(envoy, named["https"], https)
    pods.publish(envoy, named["health"], health)
    spec["containers"] += backend_containers(backends.python_image())

    with KubePlay(name, [deployment], configmap_docs=maps) as play:
        gw = GatewayPod(play, certs, https, health, probes, original)
        ready = probes["envoy/readinessProbe"]["httpGet"]
        try:
            pods.wait_until(lambda: pods.curl("-fo", "/dev/null", f"http://127.0.0.1:{health}{ready['path']}")
                            .returncode == 0, pods.START_TIMEOUT, "gateway readiness")
            # Active health checks (5 s) must have seen the backends before routing to them.
            pods.wait_until(lambda: gw.request("GET", "/v1/shelves")[0] == 200, pods.START_TIMEOUT,
                            "gateway REST to bookstore")
            pods.wait_until(lambda: gw.greeter_versions() >= {"v1", "v2"}, pods.START_TIMEOUT,
                            "greeter v1 and its v2 canary both answering through the gateway")
        except AssertionError as exc:
            pytest.fail(f"{exc}\n{gw.logs()}", pytrace=False)
        yield gw


def test_rest_over_tls_to_both_services(gateway):
    status, body = gateway.request("GET", "/api/v1/echo/hello/get?query=7")
    assert status == 200, body
    assert "request=hello" in json.loads(body)["response"]
    name = f"pod-{pods.RUN_ID}"
    status, body = gateway.request("POST", "/greeter/v1/hello", {"name": name})
    assert status == 200 and json.loads(body)["message"] == f"Hello, {name}!", body


def test_canary_weight_routes_to_both_greeters(gateway):
    """envoy/gateway/gateway.yaml's canary (weight 10): over 100 calls both versions answer,
    and v2 takes a minority."""
    versions = []
    for i in range(100):
        status, body = gateway.request("POST", "/greeter/v1/hello", {"name": f"canary-{i}"})
        assert status == 200, body
        versions.append(json.loads(body)["version"])
    assert set(versions) == {"v1", "v2"} and versions.count("v2") < 40, versions.count("v2")


def test_grpc_reflection_over_tls(gateway):
    """grpcurl's `list` and a call with the descriptors reflection returned, through the
    gateway with the server name demo.example.com and a client certificate."""
    with gateway.channel() as ch:
        db = ProtoReflectionDescriptorDatabase(ch)
        services = sorted(db.get_services())
        pool = descriptor_pool.DescriptorPool(db)
        method = pool.FindServiceByName("greeter.v1.Greeter").FindMethodByName("SayHello")
        req_cls = message_factory.GetMessageClass(method.input_type)
        rep_cls = message_factory.GetMessageClass(method.output_type)
        call = ch.unary_unary("/greeter.v1.Greeter/SayHello", request_serializer=req_cls.SerializeToString,
                              response_deserializer=rep_cls.FromString)
        reply = call(req_cls(name=pods.RUN_ID), timeout=15)
    assert "greeter.v1.Greeter" in services, services
    assert reply.message == f"Hello, {pods.RUN_ID}!"


def test_websocket_echo_over_tls(gateway):
    sock = socket.create_connection(("127.0.0.1", gateway.https), timeout=10)
    ctx = gateway.certs.context("good", ["http/1.1"])
    with connect(f"wss://{SERVER_NAME}:{gateway.https}/ws/{pods.RUN_ID}", sock=sock, ssl=ctx, open_timeout=10,
                 close_timeout=2) as ws:
        for i in range(3):
            ws.send(f"message {i}")
            assert ws.recv(timeout=10) == f"/ws/{pods.RUN_ID} message {i}"


def test_client_certificate_is_required(gateway):
    with pytest.raises((urllib3.exceptions.HTTPError, OSError)):
        gateway.request("GET", "/v1/shelves", client=None)


def test_health_listener_and_probes(gateway):
    ready = gateway.probes["envoy/readinessProbe"]["httpGet"]
    out = pods.curl("-w", "\n%{http_code}", f"http://127.0.0.1:{gateway.health}{ready['path']}")
    assert out.returncode == 0 and out.stdout.endswith("\n200"), out
    live = gateway.probes["envoy/livenessProbe"]["tcpSocket"]
    with socket.create_connection(("127.0.0.1", gateway.health), timeout=5):
        assert live["port"] == ready["port"] == "health"


def test_envoy_runs_as_the_manifest_says(gateway):
    spec = gateway.deployment["spec"]["template"]["spec"]
    envoy = gateway.play.container(gateway.pod, "envoy")
    state = pods.container_state(envoy)
    assert state["HostConfig"]["ReadonlyRootfs"] is True
    status = pods.host_pid_status(envoy)
    assert status["Uid"].split() == [str(spec["securityContext"]["runAsUser"])] * 4
    assert int(status["CapEff"], 16) == 0
