"""Session fixtures of the gateway tests: real backends and real Envoys on 127.0.0.1.

Run with `make test-gateway` (builds first), or after a build:
    .venv/bin/python -m pytest tests/gateway -k websocket

Backends (session): the example tonic service (bookstore + echo, no reflection), the
Python greeter in two versions (v1, and v2 as the canary; both with server
reflection), a WebSocket echo server.
Gateways (session), each an Envoy configured by `rgp envoy` from a description
(gateway.Gateway: .url .port .admin_url .log_path, request(), json(), stats(),
host_health()):
  plain_gw   runtime native (the dynamic module), cleartext: both gRPC services (greeter with a 25 % canary, retries and a
             1 s timeout), WebSockets (idle timeouts 3600 s and 1 s), a WebSocket
             backend nobody listens on and one a test stops and restarts, health
             checks everywhere
  tls_gw     runtime wasm (the Wasm filter and its Lua companion), TLS (demo.example.com, HTTP/1.1 and h2 by ALPN), no client certificate;
             its virtual host answers only :authority demo.example.com (any port)
  mtls_gw    runtime wasm, TLS that requires a client certificate signed by the test CA
Every test fails if a gateway logged a Wasm panic, trap or VM failure.
Logs, descriptions and configs: build/gateway/ (kept after the session).
"""

from __future__ import annotations

import shutil

import pytest

import gateway
import harness
from gateway import Certs, Gateway, closed_port

CANARY_WEIGHT = 25


@pytest.fixture(scope="session")
def out_dir():
    out = gateway.OUT_DIR
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return out


def _started(proc):
    try:
        return proc.start()
    except harness.MissingArtifact as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def certs(out_dir):
    return Certs(out_dir / "certs").make()


@pytest.fixture(scope="session")
def example_service(out_dir):
    service = _started(harness.ExampleService(out_dir / "example-service"))
    yield service
    service.stop()


@pytest.fixture(scope="session")
def greeter_v1(out_dir):
    p = _started(gateway.greeter(out_dir / "greeter-v1", "v1"))
    yield p
    p.stop()


@pytest.fixture(scope="session")
def greeter_v2(out_dir):
    p = _started(gateway.greeter(out_dir / "greeter-v2", "v2"))
    yield p
    p.stop()


@pytest.fixture(scope="session")
def ws_backend(out_dir):
    p = _started(gateway.ws_echo(out_dir / "ws-echo"))
    yield p
    p.stop()


HEALTH = {"interval": "0.5s", "timeout": "0.5s", "unhealthy_threshold": 2, "healthy_threshold": 1}


def runtime_fields(runtime: str) -> dict:
    """The description fields that pick `runtime` ("native", the default, or "wasm")."""
    return {"runtime": "wasm", "wasm": str(harness.WASM_PATH)} if runtime == "wasm" else {}


def description(example_service, greeter_v1, greeter_v2, ws_backend, *, tls=None, extra_ws=(),
                runtime="native") -> dict:
    """A gateway description: the example service under /v1/ and /api/, the greeter
    under /greeter/ (with its canary), WebSockets under /ws/."""
    desc = {
        "mode": "gateway",
        "listen": {"address": "127.0.0.1", "port": 0},
        "admin": {"address": "127.0.0.1", "port": 0},
        **runtime_fields(runtime),
        "grpc": [
            {
                "name": "bookstore",
                "descriptor": str(harness.DESCRIPTORS),
                "services": ["bookstore.v1.Bookstore", "echo.v1.EchoService"],
                "prefixes": ["/v1/", "/api/"],
                "backend": example_service.address,
                "timeout": "15s",
                "health_check": HEALTH,
                "options": {"convert_grpc_status": True},
            },
            {
                "name": "greeter",
                "descriptor": str(gateway.GREETER_PB),
                "services": ["greeter.v1.Greeter"],
                "prefixes": ["/greeter/"],
                "backend": greeter_v1.address,
                "canary": {"backend": greeter_v2.address, "weight": CANARY_WEIGHT},
                "timeout": "1s",
                "retries": {"retry_on": "unavailable", "num_retries": 2},
                "reflection": True,
                "health_check": HEALTH,
                "options": {"convert_grpc_status": True,
                            "request_validation_options": {"reject_unknown_method": True}},
            },
        ],
        "websockets": [
            {"name": "chat", "prefix": "/ws/", "backend": ws_backend.address, "idle_timeout": "3600s",
             "health_check": HEALTH},
            *extra_ws,
        ],
    }
    if tls:
        desc["tls"] = tls
    return desc


def _gateway(name, desc, out_dir):
    gw = Gateway(name, desc, out_dir / f"gateway-{name}")
    try:
        _started(gw)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    _GATEWAYS.append(gw)
    return gw


_GATEWAYS: list[Gateway] = []


@pytest.fixture(scope="session")
def flappy_backend(out_dir):
    """A WebSocket backend that test_canary_and_health stops and starts again."""
    p = _started(gateway.ws_echo(out_dir / "ws-flappy"))
    yield p
    p.stop()


@pytest.fixture(scope="session")
def plain_gw(out_dir, example_service, greeter_v1, greeter_v2, ws_backend, flappy_backend):
    extra = (
        {"name": "flappy", "prefix": "/flappy/", "backend": flappy_backend.address, "health_check": HEALTH},
        {"name": "chat-short", "prefix": "/ws-idle/", "backend": ws_backend.address, "idle_timeout": "1s"},
        {"name": "ghost", "prefix": "/ghost/", "backend": f"127.0.0.1:{closed_port()}", "health_check": HEALTH},
    )
    gw = _gateway("plain", description(example_service, greeter_v1, greeter_v2, ws_backend, extra_ws=extra), out_dir)
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def tls_gw(out_dir, certs, example_service, greeter_v1, greeter_v2, ws_backend):
    tls = {"cert": str(certs.server_cert), "key": str(certs.server_key)}
    desc = description(example_service, greeter_v1, greeter_v2, ws_backend, tls=tls, runtime="wasm")
    desc["domains"] = [gateway.SERVER_NAME]  # clients must name it (the tests send demo.example.com:PORT)
    gw = _gateway("tls", desc, out_dir)
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def mtls_gw(out_dir, certs, example_service, greeter_v1, greeter_v2, ws_backend):
    tls = {"cert": str(certs.server_cert), "key": str(certs.server_key), "client_ca": str(certs.ca),
           "require_client_certificate": True}
    gw = _gateway("mtls", description(example_service, greeter_v1, greeter_v2, ws_backend, tls=tls, runtime="wasm"),
                  out_dir)
    yield gw
    gw.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Fails the test if a gateway's Wasm filter panicked, trapped or failed while it ran."""
    before = {id(g): len(g.wasm_failures()) for g in _GATEWAYS}
    result = yield
    problems = []
    for g in _GATEWAYS:
        lines = g.wasm_failures()[before.get(id(g), 0):]
        if lines:
            problems.append(f"{g!r}:\n  " + "\n  ".join(lines[:20]))
    if problems:
        pytest.fail("Wasm failures logged during the test:\n" + "\n".join(problems), pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of each gateway's log."""
    report = yield
    if report.failed and call.when == "call":
        for g in _GATEWAYS:
            lines = [line for line in g.log_text().splitlines() if not line.startswith("access: ")]
            access = [line for line in g.log_text().splitlines() if line.startswith("access: ")]
            report.sections.append((f"{g.name} gateway log ({g.log_path})", "\n".join(lines[-25:] + access[-15:])))
    return report
