"""podman helpers of the container tests (tests/containers): commands, `podman kube play`
runs that are always taken down, free loopback ports, waiting.

Everything started here is named rgp-test-<RUN_ID>-..., so that runs (and other users of
this machine's podman) never meet, and is removed when its context ends, also when a
test fails: pods by `podman kube down` and `podman pod rm -f`, the secrets kube play
creates by `podman secret rm`. Logs of every container are saved first, under OUT_DIR.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import secrets
import socket
import subprocess
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
# As the Makefile sets it, so that running pytest by hand uses the same podman settings.
os.environ.setdefault("CONTAINERS_CONF", str(REPO / "deploy" / "podman" / "containers.conf"))
OUT_DIR = Path(os.environ.get("CONTAINERS_OUT", REPO / "build" / "containers"))
RUN_ID = f"{os.getpid()}{secrets.token_hex(2)}"
PREFIX = f"rgp-test-{RUN_ID}"

IMAGE = os.environ.get("CONTAINERS_IMAGE", "localhost/rust-grpc-proxy:0.1.0")
EXAMPLE_IMAGE = os.environ.get("CONTAINERS_EXAMPLE_IMAGE", "localhost/rust-grpc-proxy-example:0.1.0")
WASM_IMAGE = os.environ.get("CONTAINERS_WASM_IMAGE", "localhost/rust-grpc-proxy-filter:0.1.0")
WASM = Path(os.environ.get("CONTAINERS_WASM", REPO / "build" / "rust_grpc_proxy.wasm"))
DYNMOD = Path(os.environ.get("CONTAINERS_DYNMOD", REPO / "build" / "librust_grpc_proxy.so"))
RGP = Path(os.environ.get("CONTAINERS_RGP", REPO / "target" / "debug" / "rgp"))
DESCRIPTORS = Path(os.environ.get("CONTAINERS_DESCRIPTORS", REPO / "build" / "descriptors.pb"))

# A container or pod answering within this is slow but alive (2 shared cores).
START_TIMEOUT = 60.0


def podman(*args: str, check: bool = True, timeout: float = 180, input: bytes | None = None,
           text: bool = True) -> subprocess.CompletedProcess:
    """Run podman; on failure (check) raise with its output."""
    proc = subprocess.run(["podman", *args], capture_output=True, timeout=timeout, input=input, text=text)
    if check and proc.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def free_port() -> int:
    """A loopback port free now (bound, then released) for a hostPort."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str, interval: float = 0.2):
    """Poll check() until it returns a truthy value (returned)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = check()
        except Exception as exc:  # noqa: BLE001 - "not yet" takes many shapes (refused, reset, 503)
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")
        time.sleep(interval)


def load_manifests(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def find(docs: list[dict], kind: str, name: str | None = None) -> dict:
    for d in docs:
        if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name):
            return copy.deepcopy(d)
    raise KeyError(f"no {kind} {name or ''} in the manifests")


def publish(container: dict, container_port: int, host_port: int) -> None:
    """Publish `container_port` on 127.0.0.1:host_port (a hostPort: kube play's only way),
    adding a port entry when the container declares none for it."""
    ports = container.setdefault("ports", [])
    for p in ports:
        if p["containerPort"] == container_port:
            p["hostPort"] = host_port
            p["hostIP"] = "127.0.0.1"
            return
    ports.append({"containerPort": container_port, "hostPort": host_port, "hostIP": "127.0.0.1", "protocol": "TCP"})


def strip_probes(spec: dict) -> dict[str, dict]:
    """Remove the probes (podman 4.3 runs none of them without systemd: it turns a liveness
    probe into a healthcheck timer nobody fires, and ignores readiness). Returns them by
    "<container>/<kind>", for the tests to call their endpoints themselves."""
    probes = {}
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
            if kind in c:
                probes[f"{c['name']}/{kind}"] = c.pop(kind)
    return probes


def long_annotations_removed(doc: dict) -> dict[str, str]:
    """Remove (and return) annotations longer than 63 characters: podman 4.3.1's kube play
    checks annotation values against the label limit and refuses the pod ("value length
    exceeds Kubernetetes max 63"); Kubernetes allows 256 KiB for all of them. Nothing in a
    running pod reads them (the webhook already has): rust-grpc-proxy/status and
    descriptor-sha256 are records for people and tools."""
    meta = doc["metadata"] if doc["kind"] == "Pod" else doc["spec"]["template"]["metadata"]
    ann = meta.get("annotations", {})
    removed = {k: v for k, v in ann.items() if len(v) > 63}
    for k in removed:
        del ann[k]
    return removed


def secrets_as_configmaps(spec: dict, secrets: list[dict]) -> list[dict]:
    """Turn the pod's Secret volumes into ConfigMap volumes (same name, items, mount), and
    the Secrets into ConfigMaps holding the same files. podman 4.3.1 cannot mount a Secret
    as Kubernetes does: without `optional` set it panics (nil pointer in VolumeFromSecret),
    and with it the files hold the base64 text of `data`, not the decoded bytes (seen here
    with kube play's own Secret documents and with `podman secret create`)."""
    by_name = {s["metadata"]["name"]: s for s in secrets}
    maps = []
    for v in spec.get("volumes", []):
        if "secret" not in v:
            continue
        src = v.pop("secret")
        secret = by_name[src["secretName"]]
        cm = {"name": src["secretName"]}
        if "items" in src:
            cm["items"] = src["items"]
        v["configMap"] = cm
        maps.append({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": src["secretName"], "namespace": secret["metadata"].get("namespace")},
                     "data": {k: base64.b64decode(b).decode() for k, b in secret["data"].items()}})
    return maps


class KubePlay:
    """`podman kube play` of some documents; a context manager that takes them down again.

    pods: the names podman gives the pods (a Pod keeps its name, a Deployment's pod is
    <name>-pod-0); container(pod, name) is <pod>-<name>."""

    def __init__(self, name: str, docs: list[dict], configmaps: list[Path] = (), configmap_docs: list[dict] = ()):
        self.name = name
        self.docs = docs
        self.configmaps = list(configmaps)
        self.path = OUT_DIR / f"{name}.yaml"
        # One file per ConfigMap: podman 4.3 reads only the first document of a --configmap file.
        self.configmap_docs = {OUT_DIR / f"{name}.configmap-{i}.yaml": d for i, d in enumerate(configmap_docs)}
        self.configmaps += list(self.configmap_docs)
        self.pods = []
        for d in docs:
            if d["kind"] == "Pod":
                self.pods.append(d["metadata"]["name"])
            elif d["kind"] == "Deployment":
                self.pods.append(f"{d['metadata']['name']}-pod-0")
        self.secrets = [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"]
        # kube play copies each ConfigMap or Secret a pod mounts into a named volume (named
        # after the ConfigMap) that `kube down` leaves behind.
        self.volumes = []
        for d in docs:
            spec = d.get("spec", {})
            spec = spec.get("template", {}).get("spec", spec)
            for v in spec.get("volumes", []) or []:
                if "configMap" in v:
                    self.volumes.append(v["configMap"]["name"])
                elif "secret" in v:
                    self.volumes.append(v["secret"]["secretName"])

    def container(self, pod: str, name: str) -> str:
        return f"{pod}-{name}"

    def __enter__(self) -> "KubePlay":
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        for d in self.docs:
            if d["kind"] in ("Pod", "Deployment"):
                long_annotations_removed(d)
        self.path.write_text(yaml.safe_dump_all(self.docs, sort_keys=False))
        for path, doc in self.configmap_docs.items():
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
        args = ["kube", "play"]
        for cm in self.configmaps:
            args += ["--configmap", str(cm)]
        try:
            podman(*args, str(self.path), timeout=300)
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def logs(self, container: str) -> str:
        p = podman("logs", container, check=False)
        return (p.stdout or "") + (p.stderr or "")

    def save_logs(self) -> None:
        for pod in self.pods:
            p = podman("pod", "inspect", pod, check=False)
            if p.returncode != 0:
                continue
            info = json.loads(p.stdout)
            info = info[0] if isinstance(info, list) else info
            for c in info.get("Containers", []):
                (OUT_DIR / f"{c['Name']}.log").write_text(self.logs(c["Name"]))

    def down(self) -> None:
        with contextlib.suppress(Exception):
            self.save_logs()
        podman("kube", "down", str(self.path), check=False, timeout=120)
        for pod in self.pods:
            podman("pod", "rm", "-f", "-t", "2", pod, check=False, timeout=120)
        for s in self.secrets:
            podman("secret", "rm", s, check=False)
        for v in sorted(set(self.volumes)):
            podman("volume", "rm", "-f", v, check=False)


def container_state(name: str) -> dict:
    info = json.loads(podman("container", "inspect", name).stdout)
    return info[0] if isinstance(info, list) else info


def host_pid_status(name: str) -> dict[str, str]:
    """/proc/<pid>/status of a container's main process, read on the host (no tool needed in
    the image): Uid, Gid, CapEff..."""
    pid = container_state(name)["State"]["Pid"]
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def curl(*args: str, timeout: float = 15) -> subprocess.CompletedProcess:
    """curl, as the README's lines call it; -sS, bounded."""
    return subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args], capture_output=True, text=True,
                          timeout=timeout + 5)
