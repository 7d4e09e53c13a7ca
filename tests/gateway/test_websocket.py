"""WebSocket upgrades through the gateway to a WebSocket backend (Python websockets on
both ends), in cleartext and over TLS, and the route's idle timeout."""

from __future__ import annotations

import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from gateway import SERVER_NAME


def ws_connect(gw, path, certs=None):
    if gw.description.get("tls"):
        # wss://demo.example.com:PORT (SNI and Host), over a socket to 127.0.0.1.
        sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        return connect(f"wss://{SERVER_NAME}:{gw.port}{path}", sock=sock, ssl=certs.context(None, ["http/1.1"]),
                       open_timeout=10, close_timeout=2)
    return connect(f"ws://127.0.0.1:{gw.port}{path}", open_timeout=10, close_timeout=2)


@pytest.fixture(params=["plain", "tls"])
def gw(request, plain_gw, tls_gw):
    return plain_gw if request.param == "plain" else tls_gw


def test_websocket_messages_pass_both_ways(gw, certs):
    with ws_connect(gw, "/ws/room-1", certs) as ws:
        for i in range(5):
            ws.send(f"message {i}")
            assert ws.recv(timeout=10) == f"/ws/room-1 message {i}"
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=10) == b"/ws/room-1 \x00\x01binary"
    gw.wait_for_log(r'"GET /ws/room-1 HTTP/1\.1" 101 \S+ cluster=chat ')


def test_idle_timeout_is_per_route(plain_gw):
    # /ws-idle/ has idle_timeout 1s, /ws/ 3600s: after 2.5 s of silence only the first is closed.
    with ws_connect(plain_gw, "/ws-idle/a") as short, ws_connect(plain_gw, "/ws/b") as long:
        short.send("x")
        assert short.recv(timeout=10) == "/ws-idle/a x"
        long.send("x")
        assert long.recv(timeout=10) == "/ws/b x"
        time.sleep(2.5)
        long.send("still here")
        assert long.recv(timeout=10) == "/ws/b still here"
        with pytest.raises(ConnectionClosed):
            short.send("too late")
            short.recv(timeout=5)


def test_upgrades_are_refused_outside_websocket_routes(plain_gw):
    with pytest.raises(InvalidStatus) as err:
        ws_connect(plain_gw, "/greeter/v1/hello")
    assert err.value.response.status_code == 403, err.value
    plain_gw.wait_for_log(r'"GET /greeter/v1/hello HTTP/1\.1" 403 ')
