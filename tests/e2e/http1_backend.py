"""A plain HTTP/1.1 upstream that records each request exactly as it arrived
(head and body), for checking what Envoy passes on untouched: requests our
filter does not transcode must reach such an upstream as they would without it.

It answers `200 ok`, and `101 Switching Protocols` to a WebSocket upgrade
(then closes: the handshake is what the tests look at).
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass


@dataclass
class Received:
    """One request as the upstream read it."""

    method: str
    path: str
    headers: list[tuple[str, str]]  # lower-case names, in arrival order
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)


class Http1Backend:
    """HTTP/1.1 on a free port of 127.0.0.1 (`.host`, `.port`); `.received` in arrival order."""

    host = "127.0.0.1"

    def __init__(self):
        self.received: list[Received] = []
        self._sock: socket.socket | None = None
        self._stopping = threading.Event()
        self.port = 0

    def start(self) -> "Http1Backend":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        sock.listen(16)
        sock.settimeout(0.2)
        self.port = sock.getsockname()[1]
        self._sock = sock
        threading.Thread(target=self._accept, daemon=True, name="http1-backend").start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._sock is not None:
            self._sock.close()

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(10)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = client.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = [(k.strip().lower(), v.strip()) for k, v in (l.split(":", 1) for l in lines[1:])]
                request = Received(method, path, headers, b"")
                length = int(request.header("content-length") or 0)
                if request.header("transfer-encoding"):
                    # No request in these tests should have one; read what is there and say so.
                    request.body = buf
                    buf = b""
                else:
                    while len(buf) < length:
                        data = client.recv(65536)
                        if not data:
                            break
                        buf += data
                    request.body, buf = buf[:length], buf[length:]
                self.received.append(request)
                if (request.header("upgrade") or "").lower() == "websocket":
                    client.sendall(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                                   b"connection: upgrade\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
                    return
                client.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok")
        except OSError:
            return
        finally:
            client.close()
