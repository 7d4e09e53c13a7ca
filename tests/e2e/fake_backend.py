"""A misbehaving gRPC backend: a raw HTTP/2 (h2c) server written with `h2`, so
the tests can send what no real gRPC library would (garbage frames, truncated
or oversize frames, wrong content types, stream resets, dropped connections)
and see what Envoy and the filter make of it.

Each request picks its misbehaviour with the `x-fault` header (transcoded
requests carry the client's headers to the backend; bodiless ones carry them
as gRPC metadata), else `FakeBackend.default_fault`. Every fault is in FAULTS.
The server listens on a free port of 127.0.0.1 and can be stopped and started
again on the same port (a backend restart).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Callable

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions


def grpc_frame(message: bytes, flag: int = 0) -> bytes:
    return bytes([flag]) + struct.pack(">I", len(message)) + message


# A valid bookstore.v1.Shelf {id: 1, theme: "fake"} (what CreateShelf and GetShelf return).
SHELF = b"\x08\x01\x12\x04fake"
GRPC_HEADERS = [(":status", "200"), ("content-type", "application/grpc")]


class Reply:
    """What the server does for one stream, written as a short script."""

    def __init__(self, conn: "_Connection", stream_id: int):
        self.conn, self.sid = conn, stream_id

    def headers(self, headers, end=False):
        with self.conn.lock:
            self.conn.h2.send_headers(self.sid, headers, end_stream=end)
            self.conn.flush()

    def data(self, data: bytes, end=False):
        self.conn.send_data(self.sid, data, end)

    def trailers(self, status: int | None = 0, message: str | None = None):
        fields = []
        if status is not None:
            fields.append(("grpc-status", str(status)))
        if message is not None:
            fields.append(("grpc-message", message))
        if not fields:
            fields = [("x-nothing", "1")]
        with self.conn.lock:
            self.conn.h2.send_headers(self.sid, fields, end_stream=True)
            self.conn.flush()

    def reset(self, code=h2.errors.ErrorCodes.INTERNAL_ERROR):
        with self.conn.lock:
            self.conn.h2.reset_stream(self.sid, code)
            self.conn.flush()

    def drop_connection(self):
        self.conn.close()


def _ok(r: Reply, body: bytes):
    r.headers(GRPC_HEADERS)
    r.data(grpc_frame(SHELF))
    r.trailers(0)


def _slow(seconds: float) -> Callable[[Reply, bytes], None]:
    def run(r: Reply, body: bytes):
        time.sleep(seconds)
        _ok(r, body)
    return run


def _trickle(r: Reply, body: bytes):
    """A valid answer in 1-byte DATA frames."""
    r.headers(GRPC_HEADERS)
    for b in grpc_frame(SHELF):
        r.data(bytes([b]))
    r.trailers(0)


FAULTS: dict[str, Callable[[Reply, bytes], None]] = {
    "ok": _ok,
    "trickle": _trickle,
    # Bytes that are no gRPC framing (flag byte 0xff).
    "garbage-frames": lambda r, b: (r.headers(GRPC_HEADERS), r.data(b"\xff" * 64), r.trailers(0)),
    # A well-framed message that is not protobuf.
    "garbage-message": lambda r, b: (r.headers(GRPC_HEADERS), r.data(grpc_frame(b"\xff" * 40)), r.trailers(0)),
    # A frame announcing 100 bytes, 10 sent, then an OK status.
    "truncated-frame": lambda r, b: (r.headers(GRPC_HEADERS), r.data(grpc_frame(SHELF + b"\0" * 94)[:15]),
                                     r.trailers(0)),
    # A frame announcing 2 GiB (far over any limit), a few bytes of it, then OK.
    "oversize-frame": lambda r, b: (r.headers(GRPC_HEADERS), r.data(b"\x00\x7f\xff\xff\xff" + b"\x0a" * 100),
                                    r.trailers(0)),
    # A real 3 MB message (over the max_response_body_size the tests set).
    "huge-message": lambda r, b: (r.headers(GRPC_HEADERS),
                                  r.data(grpc_frame(b"\x12\x80\xb0\xb7\x01" + b"x" * 3_000_000)), r.trailers(0)),
    # The compressed flag without a grpc-encoding.
    "compressed-flag": lambda r, b: (r.headers(GRPC_HEADERS), r.data(grpc_frame(SHELF, flag=1)), r.trailers(0)),
    # Two messages for a unary method.
    "two-messages": lambda r, b: (r.headers(GRPC_HEADERS), r.data(grpc_frame(SHELF) * 2), r.trailers(0)),
    # Not gRPC at all: an HTML page.
    "html": lambda r, b: (r.headers([(":status", "200"), ("content-type", "text/html")]),
                          r.data(b"<html>oops</html>", end=True)),
    # An HTTP error without any gRPC status.
    "http-502": lambda r, b: (r.headers([(":status", "502"), ("content-type", "text/plain")]),
                              r.data(b"bad gateway", end=True)),
    # A good message but the stream ends without trailers (no grpc-status).
    "no-trailers": lambda r, b: (r.headers(GRPC_HEADERS), r.data(grpc_frame(SHELF), end=True)),
    # grpc-status that is not a number.
    "bad-status": lambda r, b: (r.headers(GRPC_HEADERS), r.data(grpc_frame(SHELF)), r.trailers("x7")),
    # grpc-status 99 with a message full of escapes.
    "odd-status": lambda r, b: (r.headers(GRPC_HEADERS), r.trailers(99, "%FF%00%zz")),
    # RST_STREAM before any answer, and after the headers.
    "reset": lambda r, b: r.reset(),
    "reset-refused": lambda r, b: r.reset(h2.errors.ErrorCodes.REFUSED_STREAM),
    "reset-after-headers": lambda r, b: (r.headers(GRPC_HEADERS), r.data(grpc_frame(SHELF)[:3]), r.reset()),
    # The TCP connection closed with the request unanswered, and half way through the answer.
    "drop": lambda r, b: r.drop_connection(),
    "drop-after-headers": lambda r, b: (r.headers(GRPC_HEADERS), r.data(grpc_frame(SHELF)[:4]), r.drop_connection()),
    # Slower than the tests' timeouts.
    "slow": _slow(4.0),
    # The request's own frames sent back (an echo for methods whose input and output types match).
    "echo": lambda r, b: (r.headers(GRPC_HEADERS), r.data(b), r.trailers(0)),
    # A 100-byte message, OK: a cases.v1.Author whose first_name is 95 x's.
    "author-100": lambda r, b: (r.headers(GRPC_HEADERS), r.data(grpc_frame(b"\x1a\x5f" + b"x" * 95)), r.trailers(0)),
    # One empty message (google.protobuf.Empty), OK.
    "empty": lambda r, b: (r.headers(GRPC_HEADERS), r.data(grpc_frame(b"")), r.trailers(0)),
    # NOT_FOUND before any message, status in the only header block (trailers-only).
    "not-found-trailers-only": lambda r, b: r.headers(GRPC_HEADERS + [("grpc-status", "5"),
                                                                       ("grpc-message", "Shelf 37 not found")],
                                                      end=True),
}


class _Connection:
    def __init__(self, server: "FakeBackend", sock: socket.socket):
        self.server, self.sock = server, sock
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self.lock = threading.Lock()
        self.requests: dict[int, tuple[dict, bytearray]] = {}
        self.closed = False

    def flush(self):
        data = self.h2.data_to_send()
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def send_data(self, sid: int, data: bytes, end: bool):
        """Sends within flow control (waits for window updates for large bodies)."""
        view = memoryview(data)
        while True:
            with self.lock:
                room = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size, len(view))
                if room > 0 or not view:
                    chunk, view = view[:room], view[room:]
                    self.h2.send_data(sid, bytes(chunk), end_stream=end and not view)
                    self.flush()
                    if not view:
                        return
                    continue
            if self.closed:
                return
            time.sleep(0.005)

    def serve(self):
        self.h2.initiate_connection()
        self.flush()
        self.sock.settimeout(0.2)
        while not self.closed and not self.server.stopping.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            try:
                with self.lock:
                    events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError:
                break
            for ev in events:
                self._event(ev)
            with self.lock:
                self.flush()
        self.close()

    def _event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            self.requests[ev.stream_id] = (dict(ev.headers), bytearray())
        elif isinstance(ev, h2.events.DataReceived):
            with self.lock:
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if ev.stream_id in self.requests:
                self.requests[ev.stream_id][1].extend(ev.data)
        elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id in self.requests:
            headers, body = self.requests.pop(ev.stream_id)
            fault = headers.get("x-fault", self.server.default_fault)
            self.server.seen.append((headers.get(":path", ""), fault))
            self.server.received.append((headers, bytes(body)))
            action = FAULTS.get(fault, FAULTS["ok"])
            threading.Thread(target=self._answer, args=(action, ev.stream_id, bytes(body)), daemon=True).start()

    def _answer(self, action, sid: int, body: bytes):
        try:
            action(Reply(self, sid), body)
        except (h2.exceptions.H2Error, OSError, KeyError):
            pass  # the client (Envoy) gave up on the stream: nothing to answer


class FakeBackend:
    """The misbehaving h2c gRPC server on 127.0.0.1 (`.host`, `.port`, like ExampleService)."""

    host = "127.0.0.1"

    def __init__(self, default_fault: str = "ok"):
        self.default_fault = default_fault
        self.port = 0
        self.seen: list[tuple[str, str]] = []
        # Every request as it arrived: its headers and its body (gRPC frames).
        self.received: list[tuple[dict, bytes]] = []
        self.stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._connections: list[_Connection] = []

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> "FakeBackend":
        """Listens (on the same port again after a stop) and serves until stop()."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(64)
        sock.settimeout(0.2)
        self.port = sock.getsockname()[1]
        self._listener = sock
        self.stopping = threading.Event()
        threading.Thread(target=self._accept, args=(sock, self.stopping), daemon=True, name="fake-backend").start()
        return self

    def _accept(self, sock: socket.socket, stopping: threading.Event):
        while not stopping.is_set():
            try:
                client, _ = sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            conn = _Connection(self, client)
            self._connections.append(conn)
            threading.Thread(target=conn.serve, daemon=True).start()
        sock.close()

    def stop(self):
        """Closes the listener and every connection (what a crashed backend looks like)."""
        self.stopping.set()
        if self._listener is not None:
            self._listener.close()
        for conn in self._connections:
            conn.close()
        self._connections.clear()
