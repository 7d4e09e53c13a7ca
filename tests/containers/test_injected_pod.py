"""The pod of deploy/example/echo.yaml, injected by the containerised webhook and run by
podman kube play, in three flavours of descriptor source, and reflection on both runtimes:

  configmap        as echo.yaml has it: the ConfigMap `rgp publish` wrote (given with --configmap)
  volume           the same ConfigMap as a volume of the pod, named by descriptor-volume
  reflection       no set at all: the app serves gRPC reflection (`serve --reflection`)
  reflection-wasm  the same, annotated rust-grpc-proxy/runtime: wasm

The runtime is the webhook's default, the dynamic module from the image, except where the
pod asks for the Wasm filter (with its Lua companion); the echo line, a GET, goes through
the router either way. Envoy's own log in the pod says which one ran and, with
reflection, that it loaded the set the app's reflection service gave.

Every pod is annotated rust-grpc-proxy/native-sidecar: "false" (the classic layout, the
sidecar as a second container): podman 4.3 does not run restartable init containers
(native sidecars), and a pod with any init container failed to start under it. The native
layout stays covered by the injector's own tests (golden patches, strict schemas of
Kubernetes 1.29-1.37, and tests/sidecar_run.rs, which runs the native sidecar's command).

From the host, through ports published on 127.0.0.1 only: the README's echo line and a
bookstore call over REST, native gRPC on the same port, /ready on the health port; the
admin port is published too and must not answer (Envoy binds it to the pod's loopback).
"""

from __future__ import annotations

import base64
import json
import random
import re
import shlex
import socket
import subprocess

import grpc
import jsonpatch
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import pods
from pods import PREFIX, REPO, KubePlay

MODES = ["configmap", "volume", "reflection", "reflection-wasm"]


def expected_runtime(mode: str) -> str:
    """The runtime the webhook must pick: its default, unless the pod annotates wasm."""
    return "wasm" if mode == "reflection-wasm" else "native"


def by_reflection(mode: str) -> bool:
    return mode.startswith("reflection")


def echo_pod(mode: str, configmap: str, configmap_sha: str) -> dict:
    """The pod the echo Deployment's ReplicaSet would create, for `mode`."""
    deployment = pods.find(pods.load_manifests(REPO / "deploy" / "example" / "echo.yaml"), "Deployment", "echo")
    template = deployment["spec"]["template"]
    meta = template["metadata"]
    ann = meta["annotations"]
    assert ann["rust-grpc-proxy/descriptor-configmap"] == "example-descriptors"
    # podman 4.3 cannot run native sidecars (restartable init containers): the classic layout.
    ann["rust-grpc-proxy/native-sidecar"] = "false"
    ann["rust-grpc-proxy/descriptor-sha256"] = configmap_sha  # as echo.yaml's comment asks
    spec = template["spec"]
    if mode == "configmap":
        ann["rust-grpc-proxy/descriptor-configmap"] = configmap
    elif mode == "volume":
        del ann["rust-grpc-proxy/descriptor-configmap"]
        spec["volumes"] = [{"name": "api-descriptors", "configMap": {"name": configmap}}]
        ann["rust-grpc-proxy/descriptor-volume"] = "api-descriptors"
        ann["rust-grpc-proxy/descriptor-key"] = f"{configmap}.pb"
    else:
        assert by_reflection(mode), mode
        del ann["rust-grpc-proxy/descriptor-configmap"]
        del ann["rust-grpc-proxy/descriptor-sha256"]
        ann["rust-grpc-proxy/descriptor-source"] = "reflection"
        spec["containers"][0]["args"].append("--reflection")
        if mode == "reflection-wasm":
            ann["rust-grpc-proxy/runtime"] = "wasm"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{PREFIX}-echo-{mode}", "namespace": deployment["metadata"]["namespace"],
                         "labels": meta["labels"], "annotations": ann},
            "spec": spec}


class InjectedPod:
    def __init__(self, mode, play, pod, sidecar, ports, probes):
        self.mode = mode
        self.play = play
        self.pod = pod
        self.sidecar = sidecar
        self.ports = ports  # container port -> host port
        self.probes = probes
        self.name = play.pods[0]
        self.status = json.loads(pod["metadata"]["annotations"]["rust-grpc-proxy/status"])
        self.rest = ports[self.status["restPort"]]

    def container(self, name: str) -> str:
        return self.play.container(self.name, name)

    def logs(self) -> str:
        return "\n".join(f"--- {c}\n{self.play.logs(self.container(c))[-4000:]}"
                         for c in ("echo", "rust-grpc-proxy"))


def bootstrap_admin_port(sidecar: dict) -> int:
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    boot = json.loads(env["RGP_ENVOY_BOOTSTRAP"])
    sock = boot["admin"]["address"]["socket_address"]
    assert sock["address"] == "127.0.0.1", sock
    return sock["port_value"]


@pytest.fixture(scope="module", params=MODES)
def injected(request, webhook, descriptor_configmap):
    mode = request.param
    cm_path, cm_name, cm_sha = descriptor_configmap
    pod = echo_pod(mode, cm_name, cm_sha)
    response = webhook.review(pod, pod["metadata"]["namespace"])
    assert response["allowed"] is True and response.get("patchType") == "JSONPatch", response
    patch = json.loads(base64.b64decode(response["patch"]))
    (pods.OUT_DIR / f"echo-{mode}.patch.json").write_text(json.dumps(patch, indent=1))
    patched = jsonpatch.apply_patch(pod, patch)

    spec = patched["spec"]
    assert "initContainers" not in spec, "classic layout asked for"
    (sidecar,) = [c for c in spec["containers"] if c["name"] == "rust-grpc-proxy"]
    status = json.loads(patched["metadata"]["annotations"]["rust-grpc-proxy/status"])
    assert status["layout"] == "classic", status
    assert status["runtime"] == expected_runtime(mode), status
    # The descriptor source is the one this mode asked for, not a default.
    mounts = {m["mountPath"]: m["name"] for m in sidecar["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    descriptor = mounts.get("/etc/rust-grpc-proxy/descriptor")
    if by_reflection(mode):
        assert descriptor is None and "--descriptor" not in sidecar["args"], sidecar["args"]
    else:
        assert volumes[descriptor]["configMap"]["name"] == cm_name, volumes[descriptor]
        assert (descriptor == "api-descriptors") == (mode == "volume"), descriptor
    probes = pods.strip_probes(spec)
    health = probes["rust-grpc-proxy/readinessProbe"]["httpGet"]["port"]
    ports = {p: pods.free_port() for p in (status["restPort"], health, bootstrap_admin_port(sidecar))}
    for container_port, host_port in ports.items():
        pods.publish(sidecar, container_port, host_port)
    configmaps = [] if by_reflection(mode) else [cm_path]
    with KubePlay(f"{PREFIX}-echo-{mode}", [json.loads(json.dumps(patched))], configmaps=configmaps) as play:
        p = InjectedPod(mode, play, patched, sidecar, ports, probes)
        ready = probes["rust-grpc-proxy/readinessProbe"]["httpGet"]
        try:
            pods.wait_until(lambda: pods.curl("-fo", "/dev/null", f"http://127.0.0.1:{ports[health]}{ready['path']}")
                            .returncode == 0, pods.START_TIMEOUT, f"{mode} pod: sidecar readiness")
            # With reflection the set arrives about a second after the app listens; REST
            # answers 503 until then.
            pods.wait_until(lambda: pods.curl("-fo", "/dev/null", f"http://127.0.0.1:{p.rest}/v1/shelves")
                            .returncode == 0, pods.START_TIMEOUT, f"{mode} pod: REST")
        except AssertionError as exc:
            pytest.fail(f"{exc}\n{p.logs()}", pytrace=False)
        yield p


def readme_echo_line() -> tuple[str, dict]:
    """The Kubernetes section's curl line and the answer the README gives for it."""
    text = (REPO / "README.md").read_text()
    line = re.search(r"^curl 'http://127\.0\.0\.1:6789/api/v1/echo/[^\n]*", text, re.M).group(0)
    answer = re.search(r"^curl 'http://127\.0\.0\.1:8080/api/v1/echo/[^\n]*\n# (\{.*\})$", text, re.M).group(1)
    return line, json.loads(answer)


def test_readme_echo_line(injected):
    line, expected = readme_echo_line()
    args = shlex.split(line.replace("127.0.0.1:6789", f"127.0.0.1:{injected.rest}"))
    assert args[0] == "curl"
    out = pods.curl(*args[1:])
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == expected, out.stdout


def bookstore():
    """Message classes of the example set (as a gRPC client generated from it would have)."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(pods.DESCRIPTORS.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"bookstore.v1.{n}"))
            for n in ("Shelf", "CreateShelfRequest", "GetShelfRequest")}


def grpc_unary(port: int, method: str, request, response_class):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(f"/bookstore.v1.Bookstore/{method}",
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=response_class.FromString)
        return call(request, timeout=10)


def test_bookstore_over_rest_and_native_grpc_on_one_port(injected):
    """The same calls over REST and over native gRPC through the sidecar's one port give the
    same answers (values chosen per run, so no answer can be canned), errors included."""
    m = bookstore()
    theme = f"theme-{injected.mode}-{pods.RUN_ID}"
    out = pods.curl("-f", "-X", "POST", f"http://127.0.0.1:{injected.rest}/v1/shelves", "-d",
                    json.dumps({"theme": theme}))
    assert out.returncode == 0, out.stderr
    rest = json.loads(out.stdout)
    native = grpc_unary(injected.rest, "CreateShelf", m["CreateShelfRequest"](shelf=m["Shelf"](theme=theme)),
                        m["Shelf"])
    assert rest == {"id": str(native.id), "theme": theme}, (rest, native)

    n = random.randint(4, 100)
    out = pods.curl("-f", f"http://127.0.0.1:{injected.rest}/v1/shelves/{n}")
    assert out.returncode == 0, out.stderr
    native = grpc_unary(injected.rest, "GetShelf", m["GetShelfRequest"](shelf=n), m["Shelf"])
    assert json.loads(out.stdout) == {"id": str(n), "theme": native.theme} and native.id == n

    missing = random.randint(101, 10_000)
    out = pods.curl("-w", "\n%{http_code}", f"http://127.0.0.1:{injected.rest}/v1/shelves/{missing}")
    body, _, code = out.stdout.rpartition("\n")
    with pytest.raises(grpc.RpcError) as err:
        grpc_unary(injected.rest, "GetShelf", m["GetShelfRequest"](shelf=missing), m["Shelf"])
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert code == "404" and json.loads(body) == {"code": 5, "message": err.value.details()}, out.stdout


def test_readiness_probe_endpoint(injected):
    ready = injected.probes["rust-grpc-proxy/readinessProbe"]["httpGet"]
    out = pods.curl("-w", "\n%{http_code}", f"http://127.0.0.1:{injected.ports[ready['port']]}{ready['path']}")
    assert out.returncode == 0 and out.stdout.endswith("\n200"), (out.stdout, out.stderr)


# Envoy's loggers that carry the filter's own records: the module's go to "dynamic_modules"
# (through the ABI's log callback), a Wasm VM's to "wasm" ("wasm log <root id>: ...").
FILTER_LOGGERS = {"native": "dynamic_modules", "wasm": "wasm"}


def filter_log(log: str, logger: str) -> list[str]:
    """The lines of Envoy's `log` that the filter wrote through `logger`."""
    return [line for line in log.splitlines() if f"][{logger}] " in line and "rust_grpc_proxy: " in line]


def test_envoy_ran_the_runtime_asked_for_and_loaded_the_set(injected):
    """Envoy's log in the pod: the filter that ran is the runtime the status annotation
    names (the other runtime wrote nothing), and it loaded the descriptor set from where
    the mode says: the mounted set handed over in the configuration, or the app's
    reflection service (the only source a reflection pod has: nothing is mounted)."""
    runtime = expected_runtime(injected.mode)
    assert injected.status["runtime"] == runtime, injected.status
    other = "wasm" if runtime == "native" else "native"
    source = 'gRPC server reflection on cluster "app"' if by_reflection(injected.mode) else "the configuration"
    sidecar = injected.container("rust-grpc-proxy")

    def loads():
        ours = filter_log(injected.play.logs(sidecar), FILTER_LOGGERS[runtime])
        return [line for line in ours if "rust_grpc_proxy: loaded " in line and f"from {source}" in line]

    # The fixture saw REST answer, so a load happened; Envoy's log may still be in flight.
    (first, *_) = pods.wait_until(loads, 20, f"{injected.mode} pod: the set loaded from {source}")
    assert "bookstore.v1.Bookstore" in first and "echo.v1.EchoService" in first, first
    log = injected.play.logs(sidecar)
    assert filter_log(log, FILTER_LOGGERS[other]) == [], f"the {other} filter ran too:\n{log[-4000:]}"
    if runtime == "native":
        # Envoy itself says it loaded a module built for its ABI, and the module that it is ready.
        assert re.search(r"\]\[dynamic_modules\] .*Dynamic module ABI version \S+ matched", log), log[-4000:]
        assert any("rust_grpc_proxy: dynamic module ready" in line for line in filter_log(log, "dynamic_modules"))
    else:
        # The Lua companion that the Wasm runtime comes with is loaded (it hooks requests only).
        assert "][lua] " in log, log[-4000:]


def listening(container: str) -> set[tuple[str, int]]:
    """(address, port) of the TCP sockets listening in the container's network namespace,
    read from /proc/<pid>/net/tcp on the host."""
    pid = pods.container_state(container)["State"]["Pid"]
    out = set()
    for line in open(f"/proc/{pid}/net/tcp").read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A":
            addr, port = local.split(":")
            out.add((socket.inet_ntoa(bytes.fromhex(addr)[::-1]), int(port, 16)))
    return out


def test_admin_port_not_reachable_from_outside(injected):
    admin = bootstrap_admin_port(injected.sidecar)
    # Envoy's admin listens, on the pod's loopback only...
    socks = listening(injected.container("rust-grpc-proxy"))
    assert ("127.0.0.1", admin) in socks, socks
    assert ("0.0.0.0", admin) not in socks, socks
    # ...so even published, it does not answer from outside the pod.
    out = pods.curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{injected.ports[admin]}/stats",
                    timeout=5)
    assert out.returncode != 0 and out.stdout in ("", "000"), (out.returncode, out.stdout, out.stderr)
    # The REST port, published the same way, does.
    assert ("0.0.0.0", injected.status["restPort"]) in socks


def sidecar_step(injected, config_out: str) -> subprocess.CompletedProcess:
    """The sidecar's own first step run again inside the running container (its binary, its
    environment, its descriptor mount), writing its Envoy config to `config_out`."""
    args = injected.sidecar["args"]
    step = args[: args.index("--config-out")] + ["--config-out", config_out]
    return pods.podman("exec", injected.container("rust-grpc-proxy"), *injected.sidecar["command"], *step,
                       check=False)


def test_read_only_root_and_non_root(injected):
    ctx = injected.sidecar["securityContext"]
    for name in ("rust-grpc-proxy", "echo"):
        state = pods.container_state(injected.container(name))
        assert state["HostConfig"]["ReadonlyRootfs"] is True, name
        status = pods.host_pid_status(injected.container(name))
        assert status["Uid"].split() == [str(ctx["runAsUser"])] * 4, (name, status["Uid"])
        assert int(status["CapEff"], 16) == 0 and status["NoNewPrivs"] == "1", name
    # A write outside the emptyDir fails; the same write into it works.
    denied = sidecar_step(injected, "/etc/rgp-write-test.json")
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr, denied.stderr
    run_mount = [m["mountPath"] for m in injected.sidecar["volumeMounts"] if m["name"] == "rust-grpc-proxy-run"][0]
    allowed = sidecar_step(injected, f"{run_mount}/write-test.json")
    assert allowed.returncode == 0, allowed.stderr
