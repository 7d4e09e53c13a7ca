"""Envoy configured only from what `rgp publish` writes (issue 5).

`rgp build` compiles descriptors/ (no protoc, no build/descriptors.pb), `rgp publish`
writes NAME.envoy.yaml / NAME.filter.json, and a real Envoy whose http_filters are
that snippet verbatim (plus a listener, a catch-all route and an HTTP/2 cluster to the
example service: what the snippet says is the user's to add) loads the Wasm filter
and serves REST calls. The rgp binary comes from E2E_RGP (make test-e2e builds it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

import harness
from harness import REPO, Envoy, require

RGP = harness._path("E2E_RGP", REPO / "target" / "debug" / "rgp")
NAME = "bookstore-api"


def rgp(*args) -> subprocess.CompletedProcess:
    r = subprocess.run([str(RGP), *map(str, args)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, f"rgp {' '.join(map(str, args))} exited {r.returncode}:\n{r.stderr}"
    return r


def bootstrap(snippet: dict, backend: harness.ExampleService) -> dict:
    """An Envoy bootstrap around the published http_filters: nothing of the filter's own."""
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "published",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                 "http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "published",
                        "access_log": [{
                            "name": "envoy.access_loggers.stdout",
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                                "log_format": {"text_format_source": {"inline_string":
                                    "access: \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%\" "
                                    "%RESPONSE_CODE% %RESPONSE_FLAGS% grpc=%GRPC_STATUS_NUMBER%\n"}},
                            },
                        }],
                        "route_config": {"virtual_hosts": [{
                            "name": "backend", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"},
                                        "route": {"cluster": "grpc_backend", "timeout": "15s"}}],
                        }]},
                        "http_filters": snippet["http_filters"],
                    },
                }]}],
            }],
            "clusters": [{
                "name": "grpc_backend",
                "type": "STATIC",
                "connect_timeout": "2s",
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}},
                    }},
                "load_assignment": {"cluster_name": "grpc_backend", "endpoints": [{"lb_endpoints": [{
                    "endpoint": {"address": {"socket_address": {
                        "address": backend.host, "port_value": backend.port}}}}]}]},
            }],
        },
    }


class PublishedEnvoy(Envoy):
    """harness.Envoy (requests, logs, readiness) with a config given whole instead of rendered."""

    def __init__(self, config: dict, backend, workdir: Path):
        super().__init__("wasm", {}, backend, workdir)
        self.config = config

    def start(self) -> "PublishedEnvoy":
        envoy = require(harness.ENVOY_BIN, "envoy binary")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config, indent=1) + "\n")  # JSON is YAML
        cmd = [str(envoy), "-c", str(self.config_path), "--disable-hot-restart",
               "--concurrency", "1", "-l", harness.ENVOY_LOG_LEVEL,
               "--admin-address-path", str(self.admin_address_path), "--file-flush-interval-msec", "50"]
        (self.workdir / "command").write_text(" ".join(cmd) + "\n")
        with open(self.log_path, "ab", buffering=0) as log:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         preexec_fn=harness._die_with_parent, cwd=self.workdir)
        try:
            self._wait_ready()
        except BaseException:
            harness._stop(self.proc)
            raise
        return self


@pytest.fixture(scope="module")
def published(e2e_dir):
    """rgp build + rgp publish of descriptors/, into build/e2e/published/out."""
    try:
        require(RGP, "rgp binary")
        wasm = require(harness.WASM_PATH, "Wasm filter")
    except harness.MissingArtifact as exc:
        pytest.fail(f"{exc}\n(rgp: cargo build -p rgp-cli)", pytrace=False)
    work = e2e_dir / "published"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    pb = work / "bookstore.pb"
    rgp("build", "-I", "descriptors", "bookstore/v1/bookstore.proto", "echo/v1/echo.proto", "-o", pb)
    rgp("check", pb, "--config", "envoy/transcoder-options.json")
    out = work / "out"
    rgp("publish", pb, "--name", NAME, "--namespace", "shop", "--config", "envoy/transcoder-options.json",
        "--wasm-path", wasm, "-o", out)
    return out


@pytest.fixture(scope="module")
def published_envoy(published, example_service, e2e_dir):
    snippet = yaml.safe_load((published / f"{NAME}.envoy.yaml").read_text())
    envoy = PublishedEnvoy(bootstrap(snippet, example_service), example_service, e2e_dir / "published" / "envoy")
    envoy.start()
    yield envoy
    envoy.stop()


def test_published_outputs_agree(published):
    """The snippet carries filter.json, whose descriptor is the published set, whose sha256 is published."""
    pb = (published / f"{NAME}.pb").read_bytes()
    assert (published / f"{NAME}.pb.sha256").read_text().split()[0] == hashlib.sha256(pb).hexdigest()
    config = json.loads((published / f"{NAME}.filter.json").read_text())
    assert base64.b64decode(config["proto_descriptor_bin"]) == pb
    snippet = yaml.safe_load((published / f"{NAME}.envoy.yaml").read_text())
    wasm = snippet["http_filters"][0]["typed_config"]["config"]
    assert json.loads(wasm["configuration"]["value"]) == config
    assert Path(wasm["vm_config"]["code"]["local"]["filename"]) == harness.WASM_PATH


def test_rest_calls_through_the_published_config(published_envoy):
    r = published_envoy.get("/v1/shelves")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    shelves = r.json()["shelves"]
    assert shelves and all("theme" in s for s in shelves)

    r = published_envoy.get("/api/v1/echo/hello/get?query=666", headers={"MD-hello": "world"})
    assert r.status_code == 200, r.text
    assert r.json() == {"response": "GET md-hello=world request=hello query=666"}

    # convert_grpc_status from --config: a gRPC NOT_FOUND becomes a 404 with a google.rpc.Status body.
    r = published_envoy.get("/v1/fail/5")
    assert r.status_code == 404, r.text
    assert r.json()["code"] == 5

    # The access log has the original path (and the rewritten method, POST).
    published_envoy.wait_for_log(r'access: "\w+ /v1/shelves" 200 ')
    published_envoy.assert_no_wasm_failures()


def test_same_answers_as_the_harness_wasm_envoy(published_envoy, wasm_envoy):
    """The published set (rgp build) and build/descriptors.pb (the example service's) serve alike."""
    for path in ["/v1/shelves", "/v1/shelves/1", "/v1/shelves/1/books", "/api/v1/echo/x/get"]:
        a, b = published_envoy.get(path), wasm_envoy.get(path)
        assert (a.status_code, a.json()) == (b.status_code, b.json()), path
