"""A misbehaving, slow, absent and restarting backend behind the Wasm Envoy
(fake_backend.py: a raw HTTP/2 server that answers each request with the fault
its `x-fault` header names).

The client always gets an answer: a JSON google.rpc.Status with a 5xx that says
what went wrong (500 for a reply that is not valid gRPC, 502 for an answer that
is not gRPC at all, 503 when the backend is unreachable or resets, 504 when it
is too slow), never a hang, and the same Envoy serves normally once the backend
behaves again. Both request paths are covered: through Envoy's router (with a
body; without one too for the module and for the Wasm build with its Lua
companion) and the Wasm filter's own gRPC call (without a body and without the
companion, "alone").
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from checks import JSON, describe
from fake_backend import FakeBackend
from harness import Envoy, with_defaults

POST = ("POST", "/v1/shelves", {"theme": "x"})
GET = ("GET", "/v1/shelves/1", None)
SHELF = {"id": "1", "theme": "fake"}

# fault -> ((HTTP status, gRPC code) with a body, (HTTP status, gRPC code) without one)
FAULTS = {
    "garbage-frames": ((500, 13), (500, 13)),
    "garbage-message": ((500, 13), (500, 13)),
    "truncated-frame": ((500, 13), (500, 13)),
    "oversize-frame": ((500, 13), (500, 13)),
    "huge-message": ((500, 13), (500, 13)),
    "compressed-flag": ((501, 12), (500, 13)),
    "two-messages": ((500, 13), (500, 13)),
    "html": ((502, 2), (500, 13)),
    "http-502": ((502, 14), (503, 14)),
    "no-trailers": ((500, 2), (500, 2)),
    "bad-status": ((500, 2), (500, 2)),
    "odd-status": ((500, 2), (500, 2)),
    "reset": ((503, 14), (503, 14)),
    "reset-refused": ((503, 14), (503, 14)),
    "drop": ((503, 14), (503, 14)),
    # Reset once the response headers came: with a body, Envoy answers 503 itself,
    # straight to the client past the filters (see the README's known limits);
    # without one, the filter says UNAVAILABLE, as gRPC's status table does for a
    # connection broken after data was sent (Envoy's gRPC client says INTERNAL).
    "reset-after-headers": (None, (503, 14)),
    "drop-after-headers": (None, (503, 14)),
}


@pytest.fixture(scope="module", params=["companion", "alone"])
def faulty(e2e_dir, filter_flavour, request):
    """(FakeBackend, Envoy with the filter in front of it: route timeout 2 s, 1 MB response
    limit); "alone": the Wasm build without its Lua companion."""
    if request.param == "alone" and filter_flavour != "wasm":
        pytest.skip("lua_companion is a setting of the Wasm build")
    backend = FakeBackend().start()
    options = with_defaults(max_response_body_size=1_000_000, lua_companion=request.param == "companion")
    envoy = Envoy(filter_flavour, options, backend,
                  e2e_dir / f"envoy-faults-{filter_flavour}-{request.param}", route_timeout="2s")
    envoy.start()
    yield backend, envoy
    envoy.stop()
    backend.stop()


def send(envoy, how, fault=None, **headers):
    method, path, body = how
    if fault:
        headers["x-fault"] = fault
    return envoy.request(method, path, headers=headers, body=body, timeout=20)


def assert_status_json(r, http: int, code: int) -> dict:
    assert (r.status_code, r.headers.get("content-type")) == (http, JSON), describe(r)
    status = r.json()
    assert set(status) <= {"code", "message", "details"} and status["code"] == code, describe(r)
    return status


def assert_serves(envoy) -> None:
    for how in (POST, GET):
        r = send(envoy, how)
        assert (r.status_code, r.json()) == (200, SHELF), describe(r)


def assert_like_with_a_body(r, with_body) -> None:
    if with_body is None:
        assert r.status_code == 503 and "reset" in r.text, describe(r)
    else:
        assert_status_json(r, *with_body)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_misbehaving_backend(faulty, fault):
    backend, envoy = faulty
    mark = envoy.log_size()
    with_body, without_body = FAULTS[fault]
    assert_like_with_a_body(send(envoy, POST, fault), with_body)
    if envoy.bodiless_via_router:
        # A bodiless request through the router: the same answer as with a body.
        assert_like_with_a_body(send(envoy, GET, fault), with_body)
    else:
        assert_status_json(send(envoy, GET, fault), *without_body)
    assert_serves(envoy)
    envoy.assert_no_wasm_failures(since=mark)


def test_messages_say_what_the_backend_did_wrong(faulty):
    _, envoy = faulty
    cases = [
        (POST, "garbage-frames", "invalid gRPC frame flag byte 0xff"),
        (POST, "truncated-frame", "ended inside a frame"),
        (GET, "truncated-frame", "without a complete response message"),
        (POST, "oversize-frame", "larger than max_response_body_size"),
        (GET, "huge-message", "larger than max_response_body_size"),
        (POST, "two-messages", "2 messages instead of one"),
        (POST, "html", "answered HTTP 200 with text/html, not gRPC"),
        (POST, "http-502", "answered HTTP 502 with text/plain"),
        (POST, "no-trailers", "without a grpc-status"),
        (POST, "reset", "upstream_reset_before_response_started{remote_reset}"),
        (GET, "reset", "reset reason: remote reset"),
    ]
    if envoy.bodiless_via_router:
        # Through the router, a bodiless request fails as one with a body does.
        cases = [(how, fault, {"without a complete response message": "ended inside a frame",
                               "reset reason: remote reset": "upstream_reset_before_response_started{remote_reset}"}
                  .get(needle, needle)) for how, fault, needle in cases]
    for how, fault, needle in cases:
        r = send(envoy, how, fault)
        assert needle in r.json().get("message", ""), f"{fault} {how[0]}: {describe(r)}"


def test_slow_backend_gets_504_on_both_paths(faulty):
    """Slower than the route timeout (2 s) through the router; slower than the client's
    grpc-timeout for the Wasm filter's own call: the filter enforces that deadline
    itself, since Envoy's gRPC streams from Wasm have none."""
    _, envoy = faulty
    started = time.monotonic()
    status = assert_status_json(send(envoy, POST, "slow"), 504, 4)
    assert "response_timeout" in status["message"]
    assert time.monotonic() - started < 3.5
    started = time.monotonic()
    status = assert_status_json(send(envoy, GET, "slow", **{"grpc-timeout": "1S"}), 504, 4)
    if envoy.bodiless_via_router:
        # Through the router: the route's timeout (2 s) applies to GET as to POST.
        assert "response_timeout" in status["message"], status
        assert 1.8 < time.monotonic() - started < 3.5
    else:
        assert "did not answer within 1s" in status["message"], status
        assert time.monotonic() - started < 2.5
    time.sleep(3)  # the slow answers arrive for calls that were given up: harmless
    assert_serves(envoy)


def test_backend_down_then_back(faulty):
    """Nothing listens: 503 JSON on both paths; the backend comes back on the same
    port and the same Envoy serves again, without a restart."""
    backend, envoy = faulty
    mark = envoy.log_size()
    backend.stop()
    try:
        for how in (POST, GET):
            status = assert_status_json(send(envoy, how), 503, 14)
            assert "connect" in status["message"] or "reset" in status["message"], status
    finally:
        backend.start()
    deadline = time.monotonic() + 10
    while send(envoy, POST).status_code != 200:
        assert time.monotonic() < deadline, "Envoy did not reach the restarted backend"
        time.sleep(0.2)
    assert_serves(envoy)
    envoy.assert_no_wasm_failures(since=mark)


def test_backend_restarts_during_load(faulty):
    """Four clients send requests with and without a body for about 5 s; the backend
    is stopped after 1.5 s and started again 1 s later. Every answer is either right
    or a JSON 503; after the restart everything is right again.

    One exception, rare because its window is the microseconds between a reply's
    headers and its trailers: a request with a body whose backend went away after
    sending the response headers gets Envoy's own text 503, sent past the filters
    (the README's known limit, `reset-after-headers` above; native does the same).
    Only that exact answer is allowed, and only for requests that go through
    Envoy's router: all of them, except the Wasm filter's own calls without its
    companion (requests without a body)."""
    backend, envoy = faulty
    mark = envoy.log_size()
    results: list[tuple[float, str, int, str]] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + 5

    def via_router(how) -> bool:
        return how is POST or envoy.bodiless_via_router

    def client(n: int):
        i = n
        while time.monotonic() < stop_at:
            how = (POST, GET)[i % 2]
            i += 1
            try:
                r = send(envoy, how)
                kind = ("ok" if r.status_code == 200 and r.json() == SHELF else
                        "json503" if r.status_code == 503 and r.headers.get("content-type") == JSON
                        and r.json().get("code") == 14 else
                        "reset after headers" if via_router(how) and r.status_code == 503
                        and r.headers.get("content-type") == "text/plain"
                        and r.text.endswith("reset reason: connection termination") else "other")
                detail = "" if kind != "other" else describe(r)
                code = r.status_code
            except Exception as exc:  # noqa: BLE001 - no answer is a finding
                kind, code, detail = "no answer", 0, repr(exc)
            with lock:
                results.append((time.monotonic(), kind, code, detail))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    backend.stop()
    time.sleep(1.0)
    backend.start()
    restarted = time.monotonic()
    for t in threads:
        t.join(30)
    kinds = Counter(kind for _, kind, _, _ in results)
    others = [r for r in results if r[1] not in ("ok", "json503", "reset after headers")]
    assert not others, f"{kinds}: " + "; ".join(f"{code} {detail}" for _, _, code, detail in others[:5])
    assert kinds["json503"] > 0, f"the outage was not seen: {kinds}"
    late = [kind for t, kind, _, _ in results if t > restarted + 1.0]
    assert late and set(late) == {"ok"}, Counter(late)
    envoy.assert_no_wasm_failures(since=mark)
