"""Envoy's failure policy for the plugin (`failure_policy` in the Wasm filter's
PluginConfig; envoy/transcoder-wasm.yaml sets FAIL_CLOSED): what clients get once
a worker's Wasm VM has failed.

Our filter never traps on purpose (no panic is reachable from a request), so the
policy is exercised with a stand-in: a minimal proxy-wasm module, written here
byte by byte, whose request-headers callback executes `unreachable`. The Envoy
around it is the project's own config, rendered as for the real filter.
"""

from __future__ import annotations

import time

import pytest

import harness
from checks import describe

# The one native gRPC call used to see whether requests still reach the backend.
LIST_SHELVES = "/bookstore.v1.Bookstore/ListShelves"


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _section(sid: int, payload: bytes) -> bytes:
    return bytes([sid]) + _leb(len(payload)) + payload


def _vec(items: list[bytes]) -> bytes:
    return _leb(len(items)) + b"".join(items)


def _name(text: str) -> bytes:
    return _leb(len(text)) + text.encode()


def trapping_module() -> bytes:
    """A proxy-wasm (ABI 0.2.1) module that loads and configures fine, then traps
    (`unreachable`) in every proxy_on_request_headers."""
    i32 = 0x7F
    types = [
        b"\x60\x00\x00",                          # 0: () -> ()
        b"\x60\x01" + bytes([i32]) + b"\x01" + bytes([i32]),           # 1: (i32) -> i32
        b"\x60\x02" + bytes([i32, i32]) + b"\x00",                    # 2: (i32, i32) -> ()
        b"\x60\x02" + bytes([i32, i32]) + b"\x01" + bytes([i32]),      # 3: (i32, i32) -> i32
        b"\x60\x03" + bytes([i32, i32, i32]) + b"\x01" + bytes([i32]),  # 4: (i32, i32, i32) -> i32
    ]
    # (export name, type, body): bodies have no locals (0x00) and end with 0x0b.
    funcs = [
        ("proxy_abi_version_0_2_1", 0, b"\x00\x0b"),
        ("proxy_on_memory_allocate", 1, b"\x00\x41\x80\x08\x0b"),   # i32.const 1024 (a scratch area)
        ("proxy_on_context_create", 2, b"\x00\x0b"),
        ("proxy_on_vm_start", 3, b"\x00\x41\x01\x0b"),               # i32.const 1: started
        ("proxy_on_configure", 3, b"\x00\x41\x01\x0b"),              # i32.const 1: configured
        ("proxy_on_request_headers", 4, b"\x00\x00\x0b"),            # unreachable
    ]
    exports = [_name(name) + b"\x00" + _leb(i) for i, (name, _, _) in enumerate(funcs)]
    exports.append(_name("memory") + b"\x02\x00")
    return (b"\x00asm\x01\x00\x00\x00"
            + _section(1, _vec(types))
            + _section(3, _vec([_leb(t) for _, t, _ in funcs]))
            + _section(5, _vec([b"\x00\x02"]))                         # memory: 2 pages, no maximum
            + _section(7, _vec(exports))
            + _section(10, _vec([_leb(len(body)) + body for _, _, body in funcs])))


@pytest.fixture
def policy_envoy(e2e_dir, example_service, monkeypatch):
    """policy_envoy(policy) -> a started Envoy running the trapping module under `policy`."""
    module = e2e_dir / "trapping.wasm"
    module.write_bytes(trapping_module())
    monkeypatch.setattr(harness, "WASM_PATH", module)
    render = harness.render.render
    started = []

    def make(policy: str) -> harness.Envoy:
        def with_policy(*args, **kwargs):
            text = render(*args, **kwargs)
            assert "failure_policy: FAIL_CLOSED" in text
            return text.replace("failure_policy: FAIL_CLOSED", f"failure_policy: {policy}")

        monkeypatch.setattr(harness.render, "render", with_policy)
        envoy = harness.Envoy("wasm", None, example_service, e2e_dir / f"envoy-policy-{policy.lower()}",
                              concurrency=1)
        envoy.start()
        started.append(envoy)
        return envoy

    yield make
    for envoy in started:
        envoy.stop()


def _grpc_ok(envoy) -> bool:
    result = envoy.grpc(LIST_SHELVES)
    return result.http_status == 200 and result.grpc_status == 0 and bool(result.messages)


@pytest.mark.allow_wasm_failures
def test_fail_closed_answers_503_while_the_vm_is_dead(policy_envoy):
    """FAIL_CLOSED (our setting): the request that trapped and every later one on that
    worker get 503, even native gRPC that the filter would pass through: nothing
    reaches the backend unfiltered."""
    envoy = policy_envoy("FAIL_CLOSED")
    first = envoy.get("/v1/shelves")
    assert first.status_code in (500, 503), describe(first)
    envoy.wait_for_log(r"Function: proxy_on_request_headers failed")
    for _ in range(3):
        r = envoy.get("/v1/shelves")
        assert r.status_code == 503, describe(r)
        assert not _grpc_ok(envoy)
    envoy.wait_for_log(r"wasm_fail_stream")


@pytest.mark.allow_wasm_failures
def test_fail_open_skips_the_dead_filter(policy_envoy):
    """FAIL_OPEN: after the failure, requests skip the filter: native gRPC reaches the
    backend, and REST requests reach it untranscoded (never a JSON answer)."""
    envoy = policy_envoy("FAIL_OPEN")
    envoy.get("/v1/shelves")  # traps the VM
    envoy.wait_for_log(r"Function: proxy_on_request_headers failed")
    assert _grpc_ok(envoy)
    r = envoy.get("/v1/shelves")
    assert r.headers.get("content-type") != "application/json", describe(r)


@pytest.mark.allow_wasm_failures
def test_fail_reload_starts_a_new_vm(policy_envoy):
    """FAIL_RELOAD: requests get 503 while the VM is dead, and after the reload backoff
    (1 s by default) the next request runs in a fresh VM (here it traps again)."""
    envoy = policy_envoy("FAIL_RELOAD")
    envoy.get("/v1/shelves")
    envoy.wait_for_log(r"Function: proxy_on_request_headers failed")
    r = envoy.get("/v1/shelves")
    assert r.status_code == 503, describe(r)
    time.sleep(1.5)
    r = envoy.get("/v1/shelves")
    assert r.status_code in (500, 503), describe(r)
    deadline = time.monotonic() + 5
    while envoy.log_text().count("Function: proxy_on_request_headers failed") < 2:
        assert time.monotonic() < deadline, "no second VM ran the request: " + envoy.log_text()[-2000:]
        time.sleep(0.1)
