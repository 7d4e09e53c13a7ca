"""Descriptor sets loaded at run time (issue 9): `descriptor_url` on a named
cluster, polled every `refresh_interval`, swapped in when its SHA-256 changes,
with the filter's metrics read from Envoy's admin /stats.

A real Python HTTP server on 127.0.0.1 serves the set; what it serves changes
during the test: nothing (404), set A (the example set without
GetBookTitle's HTTP rule), set B (the whole set, during a bounded load run),
then bytes that are no descriptor set.

Every test runs against both builds (`filter_flavour`). Both define the same
`rust_grpc_proxy.*` metrics, under Envoy's namespace for each kind of extension
(`wasmcustom.`, `dynamicmodulescustom.`); the module counts requests with one
labelled counter (`requests` with labels service, method, status). The module
loads each set once for the whole Envoy (one configuration shared by every
worker), where each Wasm VM loads its own.
"""

from __future__ import annotations

import hashlib
import re
import socket
import subprocess
import sys
import types
import http.server
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import harness
import render

REFRESH = "0.3s"
TITLE_PATH = "/v1/shelves/1/books/1/title"  # GetBookTitle: only in set B


class DescriptorServer:
    """Serves `self.body` at /set.pb (404 while it is None), on a free port."""

    def __init__(self) -> None:
        self.body: bytes | None = None
        self.gets = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                server.gets += 1
                body = server.body
                if self.path != "/set.pb" or body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("content-type", "application/octet-stream")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep pytest's output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


NAMESPACES = {"wasm": "wasmcustom.", "dynmod": "dynamicmodulescustom."}
# The module's labelled request counter, as admin /stats prints it.
LABELLED_REQUEST = re.compile(r"rust_grpc_proxy\.requests\.service\.([^.]+)\.method\.([^.]+)\.status\.([^.]+)")


def stats(envoy: harness.Envoy) -> dict[str, int]:
    """The filter's metrics from admin /stats, named as the Wasm build names them
    (without Envoy's namespace; the module's labelled request counter flattened)."""
    out = {}
    for line in envoy.admin("/stats?filter=rust_grpc_proxy").text.splitlines():
        name, _, value = line.partition(": ")
        name = name.strip()
        if not name.startswith(NAMESPACES[envoy.flavour]):
            continue  # a metric of the other build would be a bug
        name = name.removeprefix(NAMESPACES[envoy.flavour])
        name = LABELLED_REQUEST.sub(r"rust_grpc_proxy.requests.\1.\2.\3", name)
        if name.startswith("rust_grpc_proxy.") and value.strip().isdigit():
            out[name] = int(value)
    return out


def wait_for(what: str, check, timeout: float = 15.0):
    """Polls check() until it returns a truthy value (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def digest_gauge(data: bytes) -> int:
    return int(hashlib.sha256(data).hexdigest()[:12], 16)


@pytest.fixture
def descriptor_server():
    server = DescriptorServer()
    yield server
    server.stop()


def loaders(envoy: harness.Envoy) -> int:
    """How many times one set is loaded: by every Wasm VM (one per worker, one on the
    main thread), or once by the module's one configuration, shared by every worker."""
    return envoy.concurrency + 1 if envoy.flavour == "wasm" else 1


def wait_for_failures(envoy: harness.Envoy, more_than: int = 0, since: int = 0, what: str = "a failed fetch") -> None:
    """Waits for a counted fetch failure, and for its log line."""
    wait_for(what, lambda: stats(envoy).get("rust_grpc_proxy.descriptor.failures", 0) > more_than)
    envoy.wait_for_log(r"rust_grpc_proxy: descriptor (fetch from .* failed|set from .* refused)", since=since, timeout=15)


def start_envoy(flavour, example_service, e2e_dir, server: DescriptorServer, name: str, **extra) -> harness.Envoy:
    options = harness.with_defaults(
        descriptor_url={"cluster": "descriptor_server", "url": "http://descriptors.test/set.pb", "timeout": "2s"},
        refresh_interval=REFRESH,
        request_validation_options={"reject_unknown_method": True},
        **extra,
    )
    envoy = harness.Envoy(flavour, options, example_service, e2e_dir / f"{name}-{flavour}",
                          extra_clusters=harness.static_cluster("descriptor_server", server.port))
    return envoy.start()


def test_descriptor_url_first_load_swap_under_load_and_refusal(filter_flavour, example_service, e2e_dir,
                                                               descriptor_server):
    full = harness.DESCRIPTORS.read_bytes()
    set_a, stripped = render.native_compatible_descriptor(full)
    assert stripped and set_a != full, "set A must lack a route set B has"
    envoy = start_envoy(filter_flavour, example_service, e2e_dir, descriptor_server, "runtime-descriptors")
    try:
        # 1. Nothing served yet: transcodable requests get a clear 503 JSON, failures are counted.
        r = envoy.get("/v1/shelves")
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.json()["code"] == 14 and "no descriptor set loaded yet" in r.json()["message"]
        wait_for_failures(envoy)
        assert envoy.grpc("/bookstore.v1.Bookstore/ListShelves").grpc_status == 0  # native gRPC is untouched

        # 2. The source becomes available: set A is loaded by every worker.
        descriptor_server.body = set_a
        wait_for("set A to load", lambda: envoy.get("/v1/shelves").status_code == 200)
        envoy.wait_for_log(r"loaded \d+ routes .* \(sha256 " + hashlib.sha256(set_a).hexdigest(), timeout=5)
        vms = loaders(envoy)
        wait_for("every loader to load set A", lambda: stats(envoy)["rust_grpc_proxy.descriptor.loads"] >= vms)
        assert envoy.get(TITLE_PATH).status_code == 404  # not in set A (reject_unknown_method)
        assert stats(envoy)["rust_grpc_proxy.descriptor.digest"] == digest_gauge(set_a)

        # 3. Set B arrives during a bounded load run: zero failed requests, then the new route answers.
        per_worker, workers = 150, 4
        swapped = threading.Event()

        def run(i: int) -> list[int]:
            codes = []
            with requests.Session() as session:
                for n in range(per_worker):
                    if i == 0 and n == per_worker // 3:
                        descriptor_server.body = full
                        swapped.set()
                    codes.append(session.get(envoy.base_url + "/v1/shelves", timeout=10).status_code)
            return codes

        with ThreadPoolExecutor(workers) as pool:
            codes = [c for result in pool.map(run, range(workers)) for c in result]
        assert swapped.is_set()
        failed = [c for c in codes if c != 200]
        assert len(codes) == per_worker * workers and not failed, f"{len(failed)} failed: {sorted(set(failed))}"
        wait_for("every loader to load set B", lambda: stats(envoy)["rust_grpc_proxy.descriptor.loads"] >= 2 * vms)
        envoy.wait_for_log(r"loaded \d+ routes .* \(sha256 " + hashlib.sha256(full).hexdigest(), timeout=15)
        r = wait_for("set B's route", lambda: (lambda r: r if r.status_code == 200 else None)(envoy.get(TITLE_PATH)))
        assert r.text.strip().startswith('"'), r.text  # response_body: the title alone, a JSON string
        wait_for("set B's digest", lambda: stats(envoy)["rust_grpc_proxy.descriptor.digest"] == digest_gauge(full))

        # 4. A broken set is refused: logged, counted, and set B keeps serving.
        failures = stats(envoy).get("rust_grpc_proxy.descriptor.failures", 0)
        since = envoy.log_size()
        descriptor_server.body = b"\x0a\xff\xff this is not a FileDescriptorSet"
        envoy.wait_for_log(r"descriptor set from http://descriptors.test/set.pb \(sha256 [0-9a-f]{64}\) refused", since=since)
        wait_for_failures(envoy, failures, since, "the refusal in the metrics")
        assert envoy.get(TITLE_PATH).status_code == 200
        assert envoy.get("/v1/shelves").status_code == 200
        assert stats(envoy)["rust_grpc_proxy.descriptor.digest"] == digest_gauge(full)

        # 5. Request and error counters, by method and status / by kind.
        s = stats(envoy)
        assert s["rust_grpc_proxy.requests.bookstore_v1_Bookstore.ListShelves.200"] >= per_worker * workers
        assert s["rust_grpc_proxy.requests.bookstore_v1_Bookstore.GetBookTitle.200"] >= 2
        assert s["rust_grpc_proxy.transcoding_errors.not_found"] >= 1  # the 404 of step 2
        assert s["rust_grpc_proxy.descriptor.not_loaded_replies"] >= 1
        envoy.assert_no_wasm_failures()
    finally:
        envoy.stop()


def test_pass_through_until_loaded(filter_flavour, example_service, e2e_dir, descriptor_server):
    envoy = start_envoy(filter_flavour, example_service, e2e_dir, descriptor_server, "runtime-pass-through",
                        pass_through_until_loaded=True)
    try:
        wait_for("a failed fetch", lambda: descriptor_server.gets >= 1)
        r = envoy.get("/v1/shelves")
        # Passed on untranscoded: whatever the gRPC backend makes of a REST GET, not our 503.
        assert "no descriptor set loaded yet" not in r.text
        assert stats(envoy).get("rust_grpc_proxy.descriptor.not_loaded_replies", 0) == 0
        descriptor_server.body = harness.DESCRIPTORS.read_bytes()
        wait_for("the set to load", lambda: envoy.get("/v1/shelves").status_code == 200)
        envoy.assert_no_wasm_failures()
    finally:
        envoy.stop()


GREETER_SERVER = harness.REPO / "tests" / "gateway" / "greeter_server.py"
GREETER_PB = harness.REPO / "envoy" / "gateway" / "greeter.pb"


def free_port() -> int:
    """An ephemeral port of 127.0.0.1, free now (for a server started later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_reflection_source_unavailable_at_start_then_available(filter_flavour, e2e_dir):
    """descriptor_reflection on the backend's own cluster, served by Python grpcio
    (grpcio-reflection sends a file without its imports: the filter asks for them)."""
    port = free_port()
    backend = types.SimpleNamespace(host="127.0.0.1", port=port, address=f"127.0.0.1:{port}")
    options = {
        "services": ["greeter.v1.Greeter"],
        "descriptor_reflection": {"cluster": "grpc_backend", "timeout": "2s"},
        "convert_grpc_status": True,
    }
    envoy = harness.Envoy(filter_flavour, options, backend, e2e_dir / f"runtime-reflection-{filter_flavour}").start()
    greeter = None
    try:
        r = envoy.get("/greeter/v1/greetings/ann")
        assert r.status_code == 503 and "gRPC server reflection" in r.json()["message"], r.text
        wait_for_failures(envoy, what="a failed reflection exchange")

        greeter = subprocess.Popen(
            [sys.executable, str(GREETER_SERVER), "--descriptor", str(GREETER_PB), "--listen", f"127.0.0.1:{port}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = greeter.stdout.readline()  # the server prints `listening on` first, or dies
        assert line.startswith("listening on"), line

        r = wait_for("the set from reflection", lambda: (lambda r: r if r.status_code == 200 else None)(
            envoy.get("/greeter/v1/greetings/ann")))
        assert r.json()["message"] == "Greetings, ann."
        r = envoy.post("/greeter/v1/hello", {"name": "reflected"})
        assert r.status_code == 200 and r.json()["message"] == "Hello, reflected!", r.text
        envoy.wait_for_log(r"loaded 2 routes for greeter\.v1\.Greeter .* from gRPC server reflection")
        assert stats(envoy)["rust_grpc_proxy.requests.greeter_v1_Greeter.SayHello.200"] >= 1
        envoy.assert_no_wasm_failures()
    finally:
        envoy.stop()
        if greeter is not None:
            greeter.terminate()
            greeter.wait(timeout=10)


def test_reflection_absent_tries_v1_then_v1alpha_and_says_so(filter_flavour, example_service, e2e_dir):
    """The example tonic service serves no reflection: both versions answer UNIMPLEMENTED,
    the filter reports it, keeps answering 503, and native gRPC still passes."""
    options = {"services": ["bookstore.v1.Bookstore"], "descriptor_reflection": {"cluster": "grpc_backend"}}
    envoy = harness.Envoy(filter_flavour, options, example_service,
                          e2e_dir / f"runtime-no-reflection-{filter_flavour}").start()
    try:
        envoy.wait_for_log(r"grpc\.reflection\.v1alpha\.ServerReflection stream ended \(grpc-status 12", timeout=10)
        assert "grpc.reflection.v1.ServerReflection stream ended" not in envoy.log_text()  # v1 fell back silently
        assert envoy.get("/v1/shelves").status_code == 503
        assert envoy.grpc("/bookstore.v1.Bookstore/ListShelves").grpc_status == 0
        envoy.assert_no_wasm_failures()
    finally:
        envoy.stop()


class ReflectingExampleService(harness.ExampleService):
    """The tonic example service with `--reflection` (grpc.reflection.v1alpha only:
    tonic sends a file with all its imports at once)."""

    def command(self) -> list[str]:
        return super().command() + ["--reflection"]


def test_reflection_from_tonic_falls_back_to_v1alpha(filter_flavour, e2e_dir):
    backend = ReflectingExampleService(e2e_dir / f"example-service-reflection-{filter_flavour}").start()
    options = harness.with_defaults(descriptor_reflection={"cluster": "grpc_backend"})
    envoy = harness.Envoy(filter_flavour, options, backend, e2e_dir / f"runtime-tonic-reflection-{filter_flavour}").start()
    try:
        r = wait_for("the set from tonic's reflection", lambda: (lambda r: r if r.status_code == 200 else None)(
            envoy.get("/v1/shelves/7")))
        assert r.json() == {"id": "7", "theme": "Shelf 7"}
        assert envoy.post("/v1/shelves", {"theme": "Poetry"}).json()["theme"] == "Poetry"
        envoy.wait_for_log(r"loaded \d+ routes for bookstore\.v1\.Bookstore, echo\.v1\.EchoService .* from gRPC server reflection")
        envoy.assert_no_wasm_failures()
    finally:
        envoy.stop()
        backend.stop()


def h2_static_cluster(name: str, port: int) -> str:
    """harness.static_cluster speaking HTTP/2 (as gRPC reflection needs)."""
    return harness.static_cluster(name, port) + """    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
"""


@pytest.mark.parametrize("source", ["descriptor_url", "descriptor_reflection"])
def test_envoy_stops_cleanly_with_a_fetch_in_flight(filter_flavour, example_service, e2e_dir, source):
    """A descriptor server that accepts the connection and never answers: requests get the
    not-loaded 503 meanwhile, and Envoy stops cleanly with the call or stream still open
    (the module joins its timer thread; Envoy cancels what the configuration had in flight)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        silent.settimeout(15)
        port = silent.getsockname()[1]
        remote = ({"cluster": "silent", "url": "http://silent.test/set.pb", "timeout": "60s"}
                  if source == "descriptor_url" else {"cluster": "silent", "timeout": "60s"})
        options = harness.with_defaults(**{source: remote})
        envoy = harness.Envoy(filter_flavour, options, example_service,
                              e2e_dir / f"runtime-stop-{source}-{filter_flavour}",
                              extra_clusters=h2_static_cluster("silent", port)).start()
        try:
            connection, _ = silent.accept()  # the fetch is out
            with connection:
                r = envoy.get("/v1/shelves")
                assert r.status_code == 503 and "no descriptor set loaded yet" in r.json()["message"], r.text
                envoy.stop()
        finally:
            envoy.stop()
    assert envoy.proc.returncode == 0, envoy.log_text()[-3000:]
    envoy.assert_no_wasm_failures()
