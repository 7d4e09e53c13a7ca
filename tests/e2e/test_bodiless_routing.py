"""Transcoded requests without a body (GET, DELETE) go through Envoy's router, as
native's do: the dynamic module appends their gRPC frame itself, the Wasm build
hands it to its Lua companion (envoy/companion.lua, in every configuration we
render). Then the route's timeout and retry policy apply, the access log names
the upstream, and a server stream to a GET reaches the client message by message.

Without the companion (`"lua_companion": false`, "wasm-alone" here) the Wasm
filter makes the gRPC call itself: none of that applies (README, "Requests
without a body"); these tests pin that too.

The companion must touch nothing else: requests the filter does not transcode
(another route, HEAD and OPTIONS probes, a WebSocket upgrade, native gRPC) reach
a plain HTTP/1.1 upstream exactly as through native's Envoy, and a client
cannot use the companion's header to change what goes upstream.
"""

from __future__ import annotations

import re
import socket
import time

import pytest
import requests

import harness
from checks import JSON, describe
from fake_backend import FakeBackend, grpc_frame
from http1_backend import Http1Backend

MARKER = "x-rust-grpc-proxy-frame"
# Our builds as set up here: the module, the Wasm build with its companion and without.
SETUPS = {
    "dynmod": ("dynmod", None),
    "wasm": ("wasm", None),
    "wasm-alone": ("wasm", harness.with_defaults(lua_companion=False)),
}
OURS = [name for name, (flavour, _) in SETUPS.items() if flavour in harness.SELECTED_FILTERS]

MAIN_ROUTE = """              - match: { prefix: "/" }
                route:
                  cluster: grpc_backend
"""
# /plain/ goes to an HTTP/1.1 upstream; the main route retries resets twice.
ROUTES = """              - match: { prefix: "/plain/" }
                route: { cluster: plain, timeout: 5s }
              - match: { prefix: "/" }
                route:
                  cluster: grpc_backend
                  retry_policy: { retry_on: "reset", num_retries: 2 }
"""


def edit(text: str) -> str:
    assert MAIN_ROUTE in text and "          codec_type: AUTO\n" in text
    text = text.replace(MAIN_ROUTE, ROUTES, 1)
    return text.replace("          codec_type: AUTO\n",
                        "          codec_type: AUTO\n          upgrade_configs: [{ upgrade_type: websocket }]\n", 1)


@pytest.fixture(scope="module")
def rig(e2e_dir):
    """(FakeBackend, Http1Backend, {setup: Envoy}) with native's Envoy as "native"; route timeout 2 s."""
    backend, plain = FakeBackend().start(), Http1Backend().start()
    envoys: dict[str, harness.Envoy] = {}
    try:
        for name, (flavour, options) in [("native", ("native", None))] + [(n, SETUPS[n]) for n in OURS]:
            envoys[name] = harness.Envoy(flavour, options, backend, e2e_dir / f"envoy-bodiless-{name}",
                                         route_timeout="2s", edit_config=edit,
                                         extra_clusters=harness.static_cluster("plain", plain.port)).start()
        yield backend, plain, envoys
    finally:
        for envoy in envoys.values():
            envoy.stop()
        backend.stop()
        plain.stop()


def access_line(envoy: harness.Envoy, since: int, path: str) -> str:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [l for l in envoy.log_text(since).splitlines() if l.startswith("access: ") and path in l]
        if lines:
            return lines[-1]
        time.sleep(0.05)
    raise AssertionError(f"no access line for {path}")


@pytest.mark.parametrize("setup", OURS)
def test_get_goes_through_the_router(rig, setup):
    """Through the router a GET is an upstream request of the route: the access log names
    the upstream host. The Wasm filter's own call is not the router's: no upstream logged."""
    backend, _, envoys = rig
    envoy, path = envoys[setup], "/v1/shelves/1"
    since = envoy.log_size()
    r = envoy.get(path)
    assert r.status_code == 200 and r.json() == {"id": "1", "theme": "fake"}, describe(r)
    upstream = re.search(r"upstream=(\S+)", access_line(envoy, since, path)).group(1)
    assert upstream == (backend.address if envoy.bodiless_via_router else "-"), upstream


@pytest.mark.parametrize("setup", OURS)
def test_get_honours_the_route_timeout(rig, setup):
    """A backend slower (4 s) than the route's timeout (2 s): 504 after 2 s, as for a POST.
    The Wasm filter's own call has only the client's grpc-timeout (here 3 s) as deadline."""
    _, _, envoys = rig
    envoy = envoys[setup]
    started = time.monotonic()
    r = envoy.request("GET", "/v1/shelves/1", headers={"x-fault": "slow", "grpc-timeout": "3S"}, timeout=20)
    took = time.monotonic() - started
    assert (r.status_code, r.headers.get("content-type"), r.json()["code"]) == (504, JSON, 4), describe(r)
    if envoy.bodiless_via_router:
        assert "response_timeout" in r.json()["message"] and 1.8 < took < 2.9, (took, describe(r))
    else:
        assert "did not answer within 3s" in r.json()["message"] and 2.8 < took < 3.9, (took, describe(r))


@pytest.mark.parametrize("setup", OURS)
def test_get_honours_the_route_retry_policy(rig, setup):
    """The main route retries resets twice: a POST is tried three times, and a GET too
    through the router; the Wasm filter's own call is tried once."""
    backend, _, envoys = rig
    envoy = envoys[setup]
    attempts = {}
    for method, path, body in (("POST", "/v1/shelves", {"theme": "x"}), ("GET", "/v1/shelves/1", None)):
        backend.seen.clear()
        r = envoy.request(method, path, headers={"x-fault": "reset"}, body=body)
        assert r.status_code == 503 and r.json()["code"] == 14, describe(r)
        attempts[method] = sum(1 for _, fault in backend.seen if fault == "reset")
    assert attempts == {"POST": 3, "GET": 3 if envoy.bodiless_via_router else 1}


@pytest.fixture(scope="module")
def streaming(e2e_dir, example_service):
    """{setup: Envoy} in front of the example service (its streams can pause), native included."""
    envoys: dict[str, harness.Envoy] = {}
    try:
        for name, (flavour, options) in [("native", ("native", None))] + [(n, SETUPS[n]) for n in OURS]:
            envoys[name] = harness.Envoy(flavour, options, example_service,
                                         e2e_dir / f"envoy-bodiless-stream-{name}").start()
        yield envoys
    finally:
        for envoy in envoys.values():
            envoy.stop()


@pytest.mark.parametrize("setup", OURS)
def test_get_server_stream_is_delivered_live(streaming, setup):
    """Four messages 400 ms apart, asked for by a GET: through the router each is passed on
    as it comes; the Wasm filter's own call can only answer at the stream's end. The bytes
    are native's either way."""
    path = "/v1/shelves/1/books:stream?count=4&delay_ms=400"
    timing, bodies = {}, {}
    for name in ("native", setup):
        start = time.monotonic()
        chunks = []
        with requests.get(streaming[name].base_url + path, stream=True, timeout=30) as r:
            assert r.status_code == 200, r.text
            for chunk in r.iter_content(chunk_size=None):
                chunks.append((time.monotonic() - start, chunk))
        bodies[name] = b"".join(c for _, c in chunks)
        timing[name] = (chunks[0][0], time.monotonic() - start)
    assert bodies[setup] == bodies["native"], bodies
    first, total = timing[setup]
    assert total > 1.1, timing
    if streaming[setup].bodiless_via_router:
        assert first < total - 0.8, timing
    else:
        assert first > total - 0.3, timing


# Requests the filter does not transcode: (method, path, headers).
PROBES = [
    ("GET", "/plain/page?x=1", {}),
    ("HEAD", "/plain/page", {}),
    ("OPTIONS", "/plain/page", {"access-control-request-method": "GET", "origin": "https://a.example"}),
    ("DELETE", "/plain/item/7", {}),
    ("GET", "/plain/v1/shelves/1", {"accept": JSON}),  # a REST-looking path on another route
]
# Headers Envoy sets per request or per hop: they differ between any two requests.
VOLATILE = {"x-request-id", "x-envoy-expected-rq-timeout-ms"}


def as_seen(received) -> tuple:
    return (received.method, received.path, [(k, v) for k, v in received.headers if k not in VOLATILE],
            received.body)


@pytest.mark.parametrize("setup", OURS)
def test_untranscoded_requests_reach_an_http1_upstream_untouched(rig, setup):
    """Other routes, HEAD and OPTIONS probes: the HTTP/1.1 upstream gets them as through
    native's Envoy: no body, no marker."""
    _, plain, envoys = rig
    seen = {}
    for name in ("native", setup):
        plain.received.clear()
        for method, path, headers in PROBES:
            r = envoys[name].request(method, path, headers={"host": "example.test", **headers})
            assert r.status_code == 200, describe(r)
        seen[name] = [as_seen(x) for x in plain.received]
    assert len(seen[setup]) == len(PROBES)
    assert seen[setup] == seen["native"]
    for _, _, headers, body in seen[setup]:
        names = {k for k, _ in headers}
        # python-requests itself sends content-length: 0 on OPTIONS and DELETE.
        assert body == b"" and dict(headers).get("content-length", "0") == "0", headers
        assert not names & {"transfer-encoding", MARKER}, headers


def websocket_handshake(envoy: harness.Envoy, extra: str = "") -> bytes:
    with socket.create_connection(("127.0.0.1", envoy.listen_port), timeout=10) as sock:
        sock.sendall(("GET /plain/ws HTTP/1.1\r\nhost: example.test\r\nupgrade: websocket\r\n"
                      "connection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      f"sec-websocket-version: 13\r\n{extra}\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    return answer


@pytest.mark.parametrize("setup", OURS)
def test_websocket_upgrade_passes_untouched(rig, setup):
    _, plain, envoys = rig
    seen = {}
    for name in ("native", setup):
        plain.received.clear()
        answer = websocket_handshake(envoys[name])
        assert answer.startswith(b"HTTP/1.1 101 "), answer
        seen[name] = [as_seen(x) for x in plain.received]
    assert len(seen[setup]) == 1 and seen[setup] == seen["native"]


@pytest.mark.parametrize("setup", [s for s in OURS if s == "wasm"])
def test_a_client_cannot_hand_the_companion_a_frame(rig, setup):
    """The Wasm filter removes the marker from every request, so the companion only ever
    sees its own: a forged one changes neither a transcoded GET's message, nor an
    untranscoded request (HTTP/1.1 or native gRPC), which keep no body and no marker."""
    backend, plain, envoys = rig
    envoy = envoys[setup]
    forged = grpc_frame(b"\x08\x63").hex()  # GetShelfRequest{shelf: 99}
    backend.received.clear()
    r = envoy.get("/v1/shelves/1", headers={MARKER: forged})
    assert r.status_code == 200, describe(r)
    (headers, body), = backend.received
    assert body == grpc_frame(b"\x08\x01") and MARKER not in headers, (headers, body)

    plain.received.clear()
    assert envoy.get("/plain/page", headers={MARKER: forged}).status_code == 200
    (got,) = plain.received
    assert got.body == b"" and got.header(MARKER) is None and got.header("content-length") is None, got
    assert websocket_handshake(envoy, f"{MARKER}: {forged}\r\n").startswith(b"HTTP/1.1 101 ")
    assert plain.received[-1].header(MARKER) is None

    backend.received.clear()
    result = harness.grpc_call(envoy.listen_port, "/bookstore.v1.Bookstore/GetShelf", b"\x08\x02",
                               metadata={MARKER: forged})
    assert result.grpc_status == 0, result
    (headers, body), = backend.received
    assert body == grpc_frame(b"\x08\x02") and MARKER not in headers, (headers, body)


def lua_executions(envoy: harness.Envoy) -> int:
    """How many times Envoy ran the companion's script (its Lua filter's own counter)."""
    stats = envoy.admin("/stats?filter=lua.executions").text
    counts = [int(line.rsplit(":", 1)[1]) for line in stats.splitlines() if line.split(":")[0].endswith("lua.executions")]
    assert counts, f"no lua.executions counter: is the companion configured?\n{stats}"
    return sum(counts)


@pytest.mark.skipif("wasm" not in OURS, reason="the companion serves the Wasm build")
def test_the_companion_runs_only_for_the_requests_it_serves(rig):
    """The companion is wrapped in a matcher that skips it unless the Wasm filter's marker is
    there: a Lua filter costs every request a script run (about 15 µs of Envoy's CPU on a
    small POST, bench/RESULTS.md), which only a transcoded request without a body needs."""
    backend, plain, envoys = rig
    envoy = envoys["wasm"]
    before = lua_executions(envoy)
    r = envoy.post("/v1/shelves", {"id": "5", "theme": "Poems"})
    assert r.status_code == 200, describe(r)
    assert envoy.get("/plain/page", headers={MARKER: grpc_frame(b"").hex()}).status_code == 200
    result = harness.grpc_call(envoy.listen_port, "/bookstore.v1.Bookstore/GetShelf", b"\x08\x02")
    assert result.grpc_status == 0, result
    assert lua_executions(envoy) == before, "the companion ran for a request it has nothing to do with"
    r = envoy.get("/v1/shelves/1")
    assert r.status_code == 200, describe(r)
    assert lua_executions(envoy) == before + 1
