"""REST calls transcoded through one gateway to two different gRPC services, each with
its own descriptor set and its own instance of the filter (scoped by path prefix)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["plain", "tls"])
def gw(request, plain_gw, tls_gw):
    return plain_gw if request.param == "plain" else tls_gw


def test_rest_reaches_the_tonic_service(gw, certs):
    status, body = gw.json("POST", "/v1/shelves", {"theme": "Gateways"}, certs=certs)
    assert status == 200, body
    assert body["theme"] == "Gateways" and body["id"], body
    status, body = gw.json("GET", "/api/v1/echo/hello/get?query=7", certs=certs)
    assert status == 200, body
    assert "request=hello" in body["response"] and "query=7" in body["response"], body


def test_rest_reaches_the_python_service(gw, certs):
    status, body = gw.json("POST", "/greeter/v1/hello", {"name": "Ada"}, certs=certs)
    assert status == 200, body
    assert body["message"] == "Hello, Ada!" and body["version"] in ("v1", "v2"), body
    status, body = gw.json("GET", "/greeter/v1/greetings/Grace", certs=certs)
    assert status == 200, body
    assert body["message"] == "Greetings, Grace.", body


def test_grpc_errors_become_json_status(plain_gw):
    status, body = plain_gw.json("POST", "/greeter/v1/hello", {"name": ""})
    assert status == 400, body
    assert body == {"code": 3, "message": "name is required"}, body


def test_each_filter_sees_only_its_prefixes(plain_gw):
    # The greeter's filter rejects unknown methods (reject_unknown_method) ...
    status, body = plain_gw.json("POST", "/greeter/v1/nope", {})
    assert status == 404 and body["code"] == 5, body
    # ... but it is skipped outside /greeter/: an unknown /v1/ path passes the bookstore
    # filter (which does not reject) and reaches the tonic backend, which answers it as
    # an unknown gRPC method would be (not the greeter filter's JSON 404).
    status, headers, data = plain_gw.request("POST", "/v1/nope", {})
    assert b"no method is bound" not in data, (status, data)
    plain_gw.wait_for_log(r'"POST /v1/nope HTTP/1\.1" \d+ \S+ cluster=bookstore ')


def test_route_timeout_applies(plain_gw):
    status, body = plain_gw.json("POST", "/greeter/v1/hello", {"name": "sleep-100"})
    assert status == 200, body
    status, _, data = plain_gw.request("POST", "/greeter/v1/hello", {"name": "sleep-2500"})
    assert status == 504, (status, data)  # the greeter routes' 1 s timeout


def test_retries_apply(plain_gw):
    before = plain_gw.stat("upstream_rq_retry")
    status, body = plain_gw.json("POST", "/greeter/v1/hello", {"name": "flaky-retry-test"})
    # The backend fails the first two attempts with UNAVAILABLE; the route retries twice.
    assert status == 200, body
    assert body["message"] == "Hello, flaky-retry-test!", body
    assert plain_gw.stat("upstream_rq_retry") - before == 2


def test_virtual_host_answers_only_its_domain(tls_gw, certs):
    # tls_gw's domains: [demo.example.com], matched with any port.
    for host in ("demo.example.com", f"demo.example.com:{tls_gw.port}", "demo.example.com:443"):
        status, body = tls_gw.json("POST", "/greeter/v1/hello", {"name": "vh"}, certs=certs, host=host)
        assert status == 200, (host, body)
    status, _, _ = tls_gw.request("POST", "/greeter/v1/hello", {"name": "vh"}, certs=certs, host="other.example.com")
    assert status == 404


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/greeter/v1/hello", {"name": "vh"}),
    ("GET", "/greeter/v1/greetings/Grace", None),
    ("POST", "/v1/shelves/1/books:stream", {"count": 2}),
    ("GET", "/v1/shelves/1/books:stream?count=2", None),
])
def test_another_host_is_a_json_not_found(tls_gw, certs, method, path, body):
    """No virtual host for the host: 404 NOT_FOUND naming host and REST request,
    whatever the method, body or streaming (a 503 would invite retries)."""
    status, answer = tls_gw.json(method, path, body, certs=certs, host="evil.example.test")
    assert status == 404, answer
    assert answer["code"] == 5, answer
    assert f"{method} {path}" in answer["message"] and '"evil.example.test"' in answer["message"], answer
