"""The per-route layout (`filter_layout: per-route`, runtime native) in a real Envoy 1.40:
one dynamic-module filter configured `{}`, and each service's configuration on its routes.
It serves the gateway's two services end to end as the per-service layout does: REST
to the tonic and the Python backends (POST, GET, server streams, gRPC errors as JSON),
each service's options only on its own routes, native gRPC and reflection untouched."""

from __future__ import annotations

import json

import grpc
import pytest
import yaml

from conftest import _gateway, description
from test_grpc_tls import list_and_call

FILTER = "envoy.filters.http.dynamic_modules.rust_grpc_proxy"


@pytest.fixture(scope="module")
def route_gw(out_dir, example_service, greeter_v1, greeter_v2, ws_backend):
    desc = description(example_service, greeter_v1, greeter_v2, ws_backend)
    desc["filter_layout"] = "per-route"
    gw = _gateway("per-route", desc, out_dir)
    yield gw
    gw.stop()


def test_one_filter_and_the_services_configurations_on_their_routes(route_gw):
    config = yaml.safe_load(route_gw.config_path.read_text())
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert [f["name"] for f in hcm["http_filters"]] == [FILTER, "envoy.filters.http.router"]
    assert hcm["http_filters"][0]["typed_config"]["filter_config"]["value"] == "{}"
    services = {}
    for route in hcm["route_config"]["virtual_hosts"][0]["routes"]:
        own = route.get("typed_per_filter_config", {}).get(FILTER)
        if own:
            services[route["match"]["prefix"]] = json.loads(own["filter_config"]["value"])["services"]
    assert services == {
        "/bookstore.v1.Bookstore/": ["bookstore.v1.Bookstore", "echo.v1.EchoService"],
        "/echo.v1.EchoService/": ["bookstore.v1.Bookstore", "echo.v1.EchoService"],
        "/greeter.v1.Greeter/": ["greeter.v1.Greeter"],
        "/v1/": ["bookstore.v1.Bookstore", "echo.v1.EchoService"],
        "/api/": ["bookstore.v1.Bookstore", "echo.v1.EchoService"],
        "/greeter/": ["greeter.v1.Greeter"],
    }
    assert "Deprecated field" not in route_gw.log_text()


def test_rest_reaches_both_services(route_gw):
    status, body = route_gw.json("POST", "/v1/shelves", {"theme": "Per route"})
    assert status == 200 and body["theme"] == "Per route" and body["id"], body
    shelf = body["id"]
    status, body = route_gw.json("GET", f"/v1/shelves/{shelf}")
    assert status == 200 and body["id"] == shelf, body
    status, body = route_gw.json("GET", "/api/v1/echo/hello/get?query=7")
    assert status == 200 and "request=hello" in body["response"] and "query=7" in body["response"], body
    status, body = route_gw.json("POST", "/greeter/v1/hello", {"name": "Ada"})
    assert status == 200 and body["message"] == "Hello, Ada!" and body["version"] in ("v1", "v2"), body
    status, body = route_gw.json("GET", "/greeter/v1/greetings/Grace")
    assert status == 200 and body["message"] == "Greetings, Grace.", body
    # Transcoded requests are routed again on their gRPC path, GET included (%REQ(:METHOD)%).
    route_gw.wait_for_log(r'"POST /greeter/v1/greetings/Grace HTTP/1\.1" 200 \S+ cluster=greeter')


def test_a_server_stream_and_a_grpc_error(route_gw):
    status, body = route_gw.json("GET", "/v1/shelves/1/books:stream?count=2")
    assert status == 200 and [b["name"] for b in body] == ["shelves/1/books/1", "shelves/1/books/2"], body
    status, body = route_gw.json("POST", "/greeter/v1/hello", {"name": ""})
    assert status == 400 and body == {"code": 3, "message": "name is required"}, body


def test_each_service_options_apply_only_on_its_routes(route_gw):
    # The greeter's configuration rejects unknown methods on its routes ...
    status, body = route_gw.json("POST", "/greeter/v1/nope", {})
    assert status == 404 and body["code"] == 5 and "no method is bound" in body["message"], body
    # ... the bookstore's does not: an unknown /v1/ path reaches the tonic backend as it is.
    status, _, data = route_gw.request("POST", "/v1/nope", {})
    assert b"no method is bound" not in data, (status, data)
    route_gw.wait_for_log(r'"POST /v1/nope HTTP/1\.1" \d+ \S+ cluster=bookstore ')


def test_native_grpc_and_reflection_pass_untouched(route_gw):
    with grpc.insecure_channel(f"127.0.0.1:{route_gw.port}") as ch:
        services, message = list_and_call(ch)
    assert "greeter.v1.Greeter" in services and message.startswith("Hello, reflection"), (services, message)


def test_the_route_timeout_applies(route_gw):
    status, _, data = route_gw.request("POST", "/greeter/v1/hello", {"name": "sleep-2500"})
    assert status == 504, (status, data)  # the greeter routes' 1 s timeout
