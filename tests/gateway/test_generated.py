"""`rgp envoy`: the committed descriptions and their generated files agree byte for
byte, the generated configs load in Envoy 1.40, the sidecar config serves REST, and
bad descriptions are refused with a message that names the problem."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

import gateway
import harness
from conftest import runtime_fields
from gateway import REPO, RGP_BIN, Gateway, run

ENVOY_DIR = REPO / "envoy" / "gateway"
# description -> the committed file generated from it
GENERATED = {
    ENVOY_DIR / "gateway.yaml": ENVOY_DIR / "gateway.envoy.yaml",
    ENVOY_DIR / "sidecar.yaml": ENVOY_DIR / "sidecar.envoy.yaml",
    ENVOY_DIR / "istio.yaml": REPO / "deploy" / "istio" / "envoyfilter.yaml",
}


@pytest.mark.parametrize("description", sorted(GENERATED), ids=lambda p: p.name)
def test_committed_files_are_what_rgp_generates(description: Path, tmp_path):
    out = tmp_path / "out.yaml"
    run([str(RGP_BIN), "envoy", "--description", str(description), "--out", str(out)])
    committed = GENERATED[description]
    assert out.read_bytes() == committed.read_bytes(), (
        f"{committed.relative_to(REPO)} is stale: run rgp envoy --description "
        f"{description.relative_to(REPO)} --out {committed.relative_to(REPO)}")
    # Twice the same bytes, and from another working directory (the paths are the description's).
    again = tmp_path / "again.yaml"
    run([str(RGP_BIN), "envoy", "--description", str(description), "--out", str(again)], cwd=Path("/"))
    assert again.read_bytes() == out.read_bytes()


def test_greeter_set_is_what_rgp_builds(tmp_path):
    out = tmp_path / "greeter.pb"
    run([str(RGP_BIN), "build", "-I", str(REPO / "tests/gateway/proto"), "greeter/v1/greeter.proto", "-o", str(out)])
    assert out.read_bytes() == gateway.GREETER_PB.read_bytes(), "envoy/gateway/greeter.pb is stale (see docs/gateway.md)"


@pytest.mark.parametrize("name", ["gateway.envoy.yaml", "sidecar.envoy.yaml"])
def test_committed_configs_load_in_envoy(name, certs, tmp_path):
    # Point the in-image paths at real files here, then let Envoy check the whole config.
    text = (ENVOY_DIR / name).read_text()
    text = text.replace("/usr/local/lib/rust-grpc-proxy/rust_grpc_proxy.wasm", str(harness.WASM_PATH))
    text = text.replace("/etc/envoy/tls/", str(certs.server_dir) + "/")
    config = tmp_path / name
    config.write_text(text)
    env = {**os.environ, "ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(harness.DYNMOD_PATH.parent)}
    proc = subprocess.run([str(harness.ENVOY_BIN), "--mode", "validate", "-c", str(config), "-l", "warning"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "OK" in proc.stdout + proc.stderr


@pytest.mark.parametrize("runtime", ["native", "wasm"])
def test_sidecar_config_serves_rest(example_service, out_dir, runtime):
    desc = yaml.safe_load((ENVOY_DIR / "sidecar.yaml").read_text())
    desc["listen"]["port"] = desc["admin"]["port"] = desc["health"]["port"] = 0
    desc["listen"]["address"] = desc["health"]["address"] = "127.0.0.1"
    desc.update(runtime_fields(runtime))
    desc["grpc"][0]["descriptor"] = str((ENVOY_DIR / desc["grpc"][0]["descriptor"]).resolve())
    desc["grpc"][0]["backend"] = example_service.address
    gw = Gateway(f"sidecar-{runtime}", desc, out_dir / f"sidecar-{runtime}", listener="rest").start()
    try:
        status, body = gw.json("GET", "/api/v1/echo/side/get?query=1")
        assert status == 200 and "request=side" in body["response"], body
        status, body = gw.json("POST", "/v1/shelves", {"theme": "Sidecars"})
        assert status == 200 and body["theme"] == "Sidecars", body
        health = gw.listener_port("health")
        assert requests.get(f"http://127.0.0.1:{health}/ready", timeout=10).status_code == 200
        assert not gw.wasm_failures()
    finally:
        gw.stop()


def _base(tmp_path: Path) -> dict:
    return {
        "mode": "gateway", "runtime": "wasm", "wasm": "/m.wasm",
        "grpc": [{"name": "greeter", "descriptor": str(gateway.GREETER_PB), "services": ["greeter.v1.Greeter"],
                  "prefixes": ["/greeter/"], "backend": "127.0.0.1:1"}],
    }


BAD = [
    ("unknown field", lambda d: d.update(listn={"port": 1}), "unknown field `listn`"),
    ("no prefixes", lambda d: d["grpc"][0].update(prefixes=[]), "gateway mode needs `prefixes`"),
    ("bad backend", lambda d: d["grpc"][0].update(backend="nohost"), "write HOST:PORT"),
    ("bad duration", lambda d: d["grpc"][0].update(timeout="15"), "write seconds with an `s`"),
    ("canary weight", lambda d: d["grpc"][0].update(canary={"backend": "127.0.0.1:2", "weight": 150}),
     "canary weight is a percentage"),
    ("unknown service", lambda d: d["grpc"][0].update(services=["greeter.v1.Nope"]), "greeter.v1.Nope"),
    ("filter option typo", lambda d: d["grpc"][0].update(options={"print_option": {}}), "print_option"),
    ("prefix twice", lambda d: d.update(websockets=[{"name": "ws", "prefix": "/greeter/", "backend": "127.0.0.1:3"}]),
     "claimed twice"),
    ("mtls without ca", lambda d: d.update(tls={"cert": "a", "key": "b", "require_client_certificate": True}),
     "needs client_ca"),
    ("bad runtime", lambda d: d.update(runtime="jvm"), "unknown variant `jvm`"),
    ("wasm without path", lambda d: (d.update(runtime="wasm"), d.pop("wasm")), "runtime wasm needs `wasm`"),
    ("wasm path with native", lambda d: d.update(runtime="native"), "add `runtime: wasm` to keep the Wasm filter"),
    ("native in istio", lambda d: d.update(mode="istio", runtime="native", istio={"name": "x", "namespace": "y"}),
     "runtime native in istio mode"),
    ("per-route with wasm", lambda d: d.update(filter_layout="per-route"), "per-route needs runtime native"),
    ("unknown layout", lambda d: d.update(filter_layout="per-host"), "unknown variant `per-host`"),
    ("fetched set per route", lambda d: (d.update(filter_layout="per-route", runtime="native"), d.pop("wasm"),
                                         d["grpc"][0].update(options={"descriptor_url": {
                                             "cluster": "descriptors", "url": "http://d/greeter.pb"}})),
     "cannot fetch its descriptor set"),
]


@pytest.mark.parametrize("name, change, message", BAD, ids=[b[0] for b in BAD])
def test_bad_descriptions_are_refused_with_a_reason(tmp_path, name, change, message):
    desc = _base(tmp_path)
    change(desc)
    path = tmp_path / "d.yaml"
    path.write_text(json.dumps(desc))
    proc = subprocess.run([str(RGP_BIN), "envoy", "--description", str(path), "--out", str(tmp_path / "o.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc
    assert message in proc.stderr, proc.stderr
    assert not (tmp_path / "o.yaml").exists()


def test_the_base_description_is_accepted(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text(json.dumps(_base(tmp_path)))
    run([str(RGP_BIN), "envoy", "--description", str(path), "--out", str(tmp_path / "o.yaml")])
    assert yaml.safe_load((tmp_path / "o.yaml").read_text())["static_resources"]["clusters"][0]["name"] == "greeter"
