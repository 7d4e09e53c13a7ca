"""The images `make image` built, against what the webhook writes into pods and what
istio-agent expects: paths, user, and the module byte for byte."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import stat
import tarfile

import jsonpatch
import pytest

import pods
from pods import PREFIX, podman


def image_files(image: str, paths: list[str]) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    """The files at `paths` in `image` (symlinks followed), by `podman cp` from a created,
    never started container: no tool inside the image is needed."""
    name = f"{PREFIX}-files-{hashlib.sha256(image.encode()).hexdigest()[:8]}"
    podman("create", "--name", name, image)
    try:
        out = {}
        for path in paths:
            data = podman("cp", f"{name}:{path}", "-", text=False).stdout
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                (member,) = [m for m in tar.getmembers()]
                body = tar.extractfile(member).read() if member.isfile() else b""
                out[path] = (member, body)
        return out
    finally:
        podman("rm", "-f", name, check=False)


def injected_sidecar(webhook, layout: str) -> dict:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "layout", "namespace": "default", "labels": {"rustGrpcProxyEnable": "50051"},
                        "annotations": {"rust-grpc-proxy/descriptor-configmap": "api",
                                        "rust-grpc-proxy/native-sidecar": str(layout == "native").lower()}},
           "spec": {"containers": [{"name": "app", "image": "app:1", "ports": [{"containerPort": 50051}]}]}}
    response = webhook.review(pod, "default")
    patched = jsonpatch.apply_patch(pod, json.loads(base64.b64decode(response["patch"])))
    spec = patched["spec"]
    return [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == "rust-grpc-proxy"][0]


def in_image_paths(sidecar: dict) -> set[str]:
    """Every path of the image the sidecar's command, args and environment name (for the
    dynamic modules' search path: the module Envoy looks for by name there)."""
    words = list(sidecar["command"]) + list(sidecar["args"])
    for e in sidecar["env"]:
        if e["name"] == "ENVOY_DYNAMIC_MODULES_SEARCH_PATH":
            words.append(e["value"] + "/librust_grpc_proxy.so")
        else:
            words.append(e["value"])
    found = set()
    for w in words:
        for token in w.replace('"', " ").replace(",", " ").split():
            if token.startswith("/usr/"):
                found.add(token)
    return found


@pytest.mark.parametrize("layout", ["native", "classic"])
def test_sidecar_image_has_what_the_webhook_writes_into_pods(webhook, layout):
    """Paths and user come from the webhook's answer, not from this test: a path the injector
    names must exist in the image, be executable or readable by the pod's user."""
    sidecar = injected_sidecar(webhook, layout)
    assert f"localhost/{sidecar['image']}" == pods.IMAGE
    paths = in_image_paths(sidecar)
    ctx = sidecar["securityContext"]
    uid, gid = ctx["runAsUser"], ctx["runAsGroup"]
    config = json.loads(podman("image", "inspect", pods.IMAGE).stdout)[0]["Config"]
    assert config["User"] == f"{uid}:{gid}", config["User"]
    files = image_files(pods.IMAGE, sorted(paths))
    executables = {sidecar["command"][0], sidecar["args"][sidecar["args"].index("--") + 1]}
    assert executables == {"/usr/local/bin/rgp-injector", "/usr/local/bin/envoy"}, executables
    for path, (member, body) in files.items():
        assert member.isfile(), path
        other = stat.S_IROTH | (stat.S_IXOTH if path in executables else 0)
        assert member.mode & other == other or member.uid == uid, (path, oct(member.mode), member.uid)
    # The default runtime: the dynamic module, the one make built; the .wasm beside it
    # (runtime wasm, and what a pod annotated so names) is checked by the same bytes.
    module = [p for p in paths if p.endswith(".so")]
    assert len(module) == 1 and files[module[0]][1] == pods.DYNMOD.read_bytes(), module
    wasm = module[0].rsplit("/", 1)[0] + "/rust_grpc_proxy.wasm"
    assert image_files(pods.IMAGE, [wasm])[wasm][1] == pods.WASM.read_bytes()


def test_sidecar_image_binaries_run_as_the_pod_user(webhook):
    sidecar = injected_sidecar(webhook, "classic")
    user = f"{sidecar['securityContext']['runAsUser']}:{sidecar['securityContext']['runAsGroup']}"
    for binary, expect in (("/usr/local/bin/rgp-injector", "rgp-injector "), ("/usr/local/bin/envoy", "1.40.0")):
        out = podman("run", "--rm", "--name", f"{PREFIX}-version", "--network", "none", "--read-only",
                     "--user", user, "--cap-drop", "ALL", "--entrypoint", binary, pods.IMAGE, "--version", check=False)
        assert out.returncode == 0 and expect in out.stdout, (binary, out.stdout, out.stderr)


def test_example_image_runs_echo_yaml_command():
    deployment = pods.find(pods.load_manifests(pods.REPO / "deploy" / "example" / "echo.yaml"), "Deployment", "echo")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert f"localhost/{container['image']}" == pods.EXAMPLE_IMAGE
    config = json.loads(podman("image", "inspect", pods.EXAMPLE_IMAGE).stdout)[0]["Config"]
    sc = deployment["spec"]["template"]["spec"]["securityContext"]
    assert config["User"] == f"{sc['runAsUser']}:{sc['runAsGroup']}"
    out = podman("run", "--rm", "--name", f"{PREFIX}-example", "--network", "none", "--read-only",
                 "--entrypoint", container["command"][0], pods.EXAMPLE_IMAGE, "--help", check=False)
    assert out.returncode == 0 and "serve" in out.stdout, (out.stdout, out.stderr)


def test_istio_wasm_image_is_one_layer_holding_plugin_wasm(tmp_path):
    """Istio's Wasm image "compat" format: exactly one layer, holding only plugin.wasm, the
    module `make wasm` wrote, byte for byte (read from the image as `podman save` exports it)."""
    inspect = json.loads(podman("image", "inspect", pods.WASM_IMAGE).stdout)[0]
    assert len(inspect["RootFS"]["Layers"]) == 1, inspect["RootFS"]
    archive = tmp_path / "filter.tar"
    podman("save", "--format", "docker-archive", "-o", str(archive), pods.WASM_IMAGE)
    with tarfile.open(archive) as outer:
        (manifest,) = json.load(outer.extractfile("manifest.json"))
        assert len(manifest["Layers"]) == 1, manifest
        layer = outer.extractfile(manifest["Layers"][0]).read()
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        files = [m for m in tar.getmembers() if not m.isdir()]
        assert [m.name.lstrip("./") for m in files] == ["plugin.wasm"], [m.name for m in files]
        assert tar.extractfile(files[0]).read() == pods.WASM.read_bytes()
