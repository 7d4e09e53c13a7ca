"""Processes and helpers of the gateway tests (tests/gateway): certificates, the Python
backends (greeter_server.py, ws_echo_server.py), and a gateway Envoy configured by
`rgp envoy` from a description.

Nothing here builds anything: `make test-gateway` builds first. The process and
failure-line helpers come from tests/e2e/harness.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import harness  # noqa: E402  (tests/e2e/harness.py)
from harness import _die_with_parent, _stop, require  # noqa: E402

RGP_BIN = harness._path("GATEWAY_RGP", REPO / "target" / "debug" / "rgp")
OUT_DIR = harness._path("GATEWAY_OUT", REPO / "build" / "gateway")
GREETER_PB = REPO / "envoy" / "gateway" / "greeter.pb"
SERVER_NAME = "demo.example.com"
PYTHON = sys.executable


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a command, failing with its output if it exits non-zero."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------- certificates

class Certs:
    """A CA, a server certificate for demo.example.com and a client certificate, made
    with the openssl CLI, in the layout of a Kubernetes `tls` Secret mount
    (server/tls.crt, server/tls.key, server/ca.crt); plus a client certificate from
    another CA, which the gateway must refuse."""

    def __init__(self, root: Path):
        self.root = root
        self.server_dir = root / "server"
        self.ca = self.server_dir / "ca.crt"
        self.server_cert = self.server_dir / "tls.crt"
        self.server_key = self.server_dir / "tls.key"
        self.client_cert = root / "client.crt"
        self.client_key = root / "client.key"
        self.rogue_cert = root / "rogue-client.crt"
        self.rogue_key = root / "rogue-client.key"

    def _key_and_csr(self, key: Path, csr: Path, cn: str) -> None:
        run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn}"])

    def _ca(self, key: Path, cert: Path, cn: str) -> None:
        run(["openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={cn}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])

    def _sign(self, csr: Path, ca: Path, ca_key: Path, out: Path, ext: str) -> None:
        extfile = out.with_suffix(".ext")
        extfile.write_text(ext)
        run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(out), "-days", "2", "-extfile", str(extfile)])

    def make(self) -> "Certs":
        if self.root.exists():
            shutil.rmtree(self.root)
        self.server_dir.mkdir(parents=True)
        r = self.root
        self._ca(r / "ca.key", self.ca, "rust-grpc-proxy test CA")
        self._key_and_csr(self.server_key, r / "server.csr", SERVER_NAME)
        self._sign(r / "server.csr", self.ca, r / "ca.key", self.server_cert,
                   f"subjectAltName=DNS:{SERVER_NAME}\nextendedKeyUsage=serverAuth\n")
        self._key_and_csr(self.client_key, r / "client.csr", "test-client")
        self._sign(r / "client.csr", self.ca, r / "ca.key", self.client_cert, "extendedKeyUsage=clientAuth\n")
        self._ca(r / "rogue-ca.key", r / "rogue-ca.crt", "some other CA")
        self._key_and_csr(self.rogue_key, r / "rogue.csr", "rogue-client")
        self._sign(r / "rogue.csr", r / "rogue-ca.crt", r / "rogue-ca.key", self.rogue_cert,
                   "extendedKeyUsage=clientAuth\n")
        return self

    def context(self, client: str | None = None, alpn: list[str] | None = None) -> ssl.SSLContext:
        """A client TLS context trusting the test CA; client = "good", "rogue" or None."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if client == "good":
            ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        elif client == "rogue":
            ctx.load_cert_chain(str(self.rogue_cert), str(self.rogue_key))
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx


# ----------------------------------------------------------------- backends

class ListeningProcess(harness.ExampleService):
    """A backend that prints `listening on HOST:PORT` once it serves (harness.ExampleService's
    start and stop, with another command)."""

    def __init__(self, name: str, cmd: list[str], workdir: Path):
        self.name = name
        self.cmd = cmd
        self.binary = Path(cmd[0])
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.host = ""
        self.port = 0

    def command(self) -> list[str]:
        return self.cmd


def greeter(workdir: Path, version: str) -> ListeningProcess:
    """greeter.v1.Greeter (Python grpcio, server reflection) answering with `version`."""
    return ListeningProcess(f"greeter-{version}", [
        PYTHON, str(HERE / "greeter_server.py"), "--descriptor", str(GREETER_PB),
        "--listen", "127.0.0.1:0", "--version", version], workdir)


def ws_echo(workdir: Path, port: int = 0) -> ListeningProcess:
    """A WebSocket echo server (Python websockets)."""
    return ListeningProcess("ws-echo", [PYTHON, str(HERE / "ws_echo_server.py"), "--listen", f"127.0.0.1:{port}"],
                            workdir)


# ----------------------------------------------------------------- the gateway

class Gateway:
    """One Envoy configured by `rgp envoy --description` from a description (a dict,
    written as JSON, which is YAML). Ports 0 in the description: Envoy picks them,
    read back from the admin API by listener name."""

    def __init__(self, name: str, description: dict, workdir: Path, listener: str = "gateway",
                 config: dict | None = None):
        self.name = name
        self.config = config  # an Envoy config to run as is, instead of rgp envoy's
        self.listener = listener
        self.description = description
        self.workdir = workdir
        self.description_path = workdir / "gateway.yaml"
        self.config_path = workdir / "envoy.yaml"
        self.log_path = workdir / "envoy.log"
        self.admin_address_path = workdir / "admin-address"
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.admin_port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self.description.get("tls") else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def __repr__(self) -> str:
        return f"<Gateway {self.name} {self.url} log={self.log_path}>"

    def start(self) -> "Gateway":
        envoy = require(harness.ENVOY_BIN, "envoy binary")
        rgp = require(RGP_BIN, "rgp binary")
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)
        if self.config is None:
            self.description_path.write_text(json.dumps(self.description, indent=2) + "\n")
            run([str(rgp), "envoy", "--description", str(self.description_path), "--out", str(self.config_path)])
        else:
            self.config_path.write_text(json.dumps(self.config, indent=2) + "\n")
        cmd = [str(envoy), "-c", str(self.config_path), "--disable-hot-restart",
               "--concurrency", str(harness.ENVOY_CONCURRENCY), "-l", harness.ENVOY_LOG_LEVEL,
               "--admin-address-path", str(self.admin_address_path), "--file-flush-interval-msec", "50"]
        # Runtime native: Envoy finds librust_grpc_proxy.so by name in this directory.
        env = {**os.environ,
               "ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(require(harness.DYNMOD_PATH, "dynamic module").parent)}
        log = open(self.log_path, "ab", buffering=0)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                     preexec_fn=_die_with_parent, cwd=self.workdir)
        log.close()
        deadline = time.monotonic() + harness.START_TIMEOUT
        while not self._probe():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                _stop(self.proc)
                problems = [line for line in self.log_text().splitlines()
                            if re.search(r"\]\[(critical|error|warning)\]", line)]
                raise RuntimeError(f"gateway {self.name} did not start (exit code {self.proc.returncode}); "
                                   f"config {self.config_path}; log {self.log_path}:\n" + "\n".join(problems[-20:]))
            time.sleep(0.05)
        return self

    def _probe(self) -> bool:
        self.admin_port, port = harness.probe_envoy(self.admin_address_path, self.admin_port, self.listener)
        if port:
            self.port = port
        return bool(port)

    def stop(self) -> None:
        _stop(self.proc)

    def listener_port(self, name: str) -> int:
        """The port Envoy bound for listener `name`."""
        listeners = requests.get(self.admin_url + "/listeners?format=json", timeout=10).json()
        for status in listeners.get("listener_statuses", []):
            if status.get("name") == name:
                return int(status["local_address"]["socket_address"]["port_value"])
        raise KeyError(f"no listener {name!r}")

    def stats(self) -> dict[str, int]:
        """Envoy's counters and gauges (name -> value)."""
        text = requests.get(self.admin_url + "/stats", timeout=10).text
        out = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if value.strip().lstrip("-").isdigit():
                out[name] = int(value)
        return out

    def stat(self, suffix: str) -> int:
        """Sum of the counters whose name ends with `suffix`."""
        return sum(v for k, v in self.stats().items() if k.endswith(suffix))

    def host_health(self, cluster: str) -> list[dict]:
        """health_status of each host of `cluster` (admin /clusters)."""
        data = requests.get(self.admin_url + "/clusters?format=json", timeout=10).json()
        for c in data.get("cluster_statuses", []):
            if c.get("name") == cluster:
                return [h.get("health_status", {}) for h in c.get("host_statuses", [])]
        raise KeyError(f"no cluster {cluster!r} in {self.admin_url}/clusters")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, pattern: str, timeout: float = 5.0) -> re.Match:
        """The first match of regex `pattern` in the log (access lines reach it up to ~50 ms late)."""
        regex = re.compile(pattern)
        return wait_until(lambda: regex.search(self.log_text()), timeout, f"{pattern!r} in {self.log_path}")

    def wasm_failures(self) -> list[str]:
        return harness.wasm_failure_lines(self.log_text(), access_log=False)

    # -- HTTP/1.1 requests (over TLS when the description has tls)

    def request(self, method: str, path: str, body: dict | None = None, client: str | None = None,
                certs: Certs | None = None, timeout: float = harness.REQUEST_TIMEOUT, host: str | None = None):
        """(status, headers, body bytes) of one HTTP/1.1 request; over TLS the server
        name is demo.example.com (verified against the test CA) and so is the Host
        header (unless `host` says otherwise), with the client certificate `client`
        ("good", "rogue" or None)."""
        import urllib3

        headers = {"content-type": "application/json"} if body is not None else {}
        if host is not None or self.description.get("tls"):
            headers["host"] = host or f"{SERVER_NAME}:{self.port}"
        data = json.dumps(body).encode() if body is not None else None
        if self.description.get("tls"):
            assert certs is not None, "a TLS gateway needs the certs"
            pool = urllib3.HTTPSConnectionPool(
                "127.0.0.1", self.port, ssl_context=certs.context(client, ["http/1.1"]),
                server_hostname=SERVER_NAME, assert_hostname=SERVER_NAME, retries=False, timeout=timeout)
        else:
            pool = urllib3.HTTPConnectionPool("127.0.0.1", self.port, retries=False, timeout=timeout)
        try:
            r = pool.request(method, path, body=data, headers=headers)
            return r.status, r.headers, r.data
        finally:
            pool.close()

    def json(self, method: str, path: str, body: dict | None = None, **kw) -> tuple[int, dict]:
        status, _, data = self.request(method, path, body, **kw)
        try:
            return status, json.loads(data)
        except ValueError:
            raise AssertionError(f"{method} {path}: {status} with a non-JSON body {data[:300]!r}") from None


def wait_until(check, timeout: float, what: str, interval: float = 0.1):
    """Poll check() until it returns a truthy value (returned), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout}s (last: {value!r})")
        time.sleep(interval)

