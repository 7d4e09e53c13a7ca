"""Both runtimes `rgp envoy` renders, in a real Envoy 1.40: the dynamic module (native, the
default in gateway and sidecar modes) and the Wasm filter followed by its Lua companion
(wasm). With either, a transcoded GET goes through the router like a POST: the route's
timeout cuts a slow backend off (504, response flag UT, which only the router sets).
In gateway mode the companion sits right after its service's Wasm filter, under the
same matcher, and runs the repository's envoy/companion.lua verbatim."""

from __future__ import annotations

import json

import pytest
import requests
import yaml

import gateway
from conftest import runtime_fields
from gateway import REPO, Gateway

COMPANION = (REPO / "envoy" / "companion.lua").read_text()


@pytest.fixture(scope="module", params=["native", "wasm"])
def runtime_gw(request, out_dir, greeter_v1):
    """A gateway in front of the greeter alone, route timeout 1 s, in runtime request.param."""
    runtime = request.param
    desc = {
        "mode": "gateway",
        "listen": {"address": "127.0.0.1", "port": 0},
        "admin": {"address": "127.0.0.1", "port": 0},
        **runtime_fields(runtime),
        "grpc": [{
            "name": "greeter", "descriptor": str(gateway.GREETER_PB), "services": ["greeter.v1.Greeter"],
            "prefixes": ["/greeter/"], "backend": greeter_v1.address, "timeout": "1s",
            "options": {"convert_grpc_status": True},
        }],
    }
    gw = Gateway(f"runtime-{runtime}", desc, out_dir / f"runtime-{runtime}")
    try:
        gw.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    gw.runtime = runtime
    yield gw
    gw.stop()


def test_get_is_transcoded(runtime_gw):
    status, body = runtime_gw.json("GET", "/greeter/v1/greetings/Ada")
    assert status == 200 and body["message"] == "Greetings, Ada.", body
    status, body = runtime_gw.json("POST", "/greeter/v1/hello", {"name": "Ada"})
    assert status == 200 and body["message"] == "Hello, Ada!", body
    assert not runtime_gw.wasm_failures()


def test_get_goes_through_the_router(runtime_gw):
    """The route's 1 s timeout applies to a GET whose backend answers after 2.5 s, and the
    router counts it (%REQ(:METHOD)% in the access log is the method after transcoding)."""
    routed = runtime_gw.stat("http.gateway.rq_total")
    status, _, data = runtime_gw.request("GET", "/greeter/v1/greetings/sleep-2500")
    assert status == 504, (status, data)
    runtime_gw.wait_for_log(r'"POST /greeter/v1/greetings/sleep-2500 HTTP/1\.1" 504 UT cluster=greeter ')
    assert runtime_gw.stat("http.gateway.rq_total") == routed + 1


def test_filters_in_order_and_scoped_alike(runtime_gw):
    config = yaml.safe_load(runtime_gw.config_path.read_text())
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    filters = hcm["http_filters"]
    names = [f["name"] for f in filters]
    if runtime_gw.runtime == "native":
        assert names == ["envoy.filters.http.dynamic_modules.greeter", "envoy.filters.http.router"]
        module = filters[0]["typed_config"]["extension_config"]["typed_config"]
        assert module["dynamic_module_config"] == {"name": "rust_grpc_proxy"}
        assert "lua_companion" not in json.loads(module["filter_config"]["value"])
        return
    assert names == ["envoy.filters.http.wasm.greeter", "envoy.filters.http.lua.greeter", "envoy.filters.http.router"]
    wasm, lua = (f["typed_config"] for f in filters[:2])
    # The companion is scoped exactly like its Wasm filter, and runs only for requests with the marker.
    in_scope = wasm["xds_matcher"]["matcher_list"]["matchers"][0]["predicate"]["not_matcher"]
    (gated,) = lua["xds_matcher"]["matcher_list"]["matchers"]
    gate = json.loads((REPO / "envoy" / "companion-gate.json").read_text())
    assert gated["predicate"] == {"not_matcher": {"and_matcher": {"predicate": [in_scope, gate]}}}, gated
    assert lua["extension_config"]["typed_config"]["default_source_code"]["inline_string"] == COMPANION
    plugin = json.loads(wasm["extension_config"]["typed_config"]["config"]["configuration"]["value"])
    assert plugin["lua_companion"] is True


def test_the_companion_runs_only_for_a_get(runtime_gw):
    """In gateway mode too, the companion's script runs for a transcoded request without a
    body only: not for a POST, nor for a path outside the service carrying the marker."""
    if runtime_gw.runtime != "wasm":
        pytest.skip("the companion serves the Wasm build")
    before = runtime_gw.stat("http.gateway.lua.executions")
    status, body = runtime_gw.json("POST", "/greeter/v1/hello", {"name": "Ada"})
    assert status == 200, body
    requests.get(f"http://127.0.0.1:{runtime_gw.port}/elsewhere", headers={"x-rust-grpc-proxy-frame": "0000000000"},
                 timeout=10)
    assert runtime_gw.stat("http.gateway.lua.executions") == before
    status, body = runtime_gw.json("GET", "/greeter/v1/greetings/Ada")
    assert status == 200, body
    assert runtime_gw.stat("http.gateway.lua.executions") == before + 1
