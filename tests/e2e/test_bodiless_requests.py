"""Requests without a body (GET, DELETE, a POST with an empty body): their
headers end the stream. The module gives them their frame as body; the Wasm
build has its Lua companion do it, or without one (`"lua_companion": false`)
makes the gRPC call itself and answers with a local reply. These tests check
that each path answers exactly like native, errors and metadata included
(test_bodiless_routing.py: the router's part).
"""

from concurrent.futures import ThreadPoolExecutor

import pytest

from checks import JSON, assert_answer, assert_native_text_error, assert_own_error, assert_same
from harness import with_defaults

BODILESS = [
    # (id, method, path, headers)
    ("list", "GET", "/v1/shelves", None),
    ("get", "GET", "/v1/shelves/42", None),
    ("delete", "DELETE", "/v1/shelves/42", None),
    ("delete with query and metadata", "DELETE", "/api/v1/echo/x/delete?query=3", {"MD-hello": "del"}),
    ("not found", "GET", "/v1/shelves/700", None),
    ("delete not found", "DELETE", "/v1/shelves/700", None),
    ("error with details", "GET", "/v1/fail/9", None),
    ("trailers-only error", "GET", "/v1/fail/16?trailers_only=true", None),
    ("success of Fail", "GET", "/v1/fail/0", None),
    ("HttpBody answer", "GET", "/v1/shelves/3/books/4/cover", None),
    ("query-bound request", "GET", "/v1/shelves/2/books?pageSize=5&tags=x&filter.genre=SCIENCE", None),
    ("POST with an empty body", "POST", "/v1/shelves", None),
    ("POST body * with an empty body", "POST", "/v1/types:echo", None),
    ("POST error with an empty body", "POST", "/v1/fail/5", None),
    ("PUT HttpBody with an empty body", "PUT", "/v1/shelves/1/books/2/cover", {"content-type": "image/png"}),
    ("client deadline", "GET", "/v1/shelves/1", {"grpc-timeout": "5S"}),
]


@pytest.mark.parametrize("companion", [True, False], ids=["companion", "alone"])
@pytest.mark.parametrize("method, path, headers", [b[1:] for b in BODILESS], ids=[b[0] for b in BODILESS])
def test_bodiless_request_like_native(both, method, path, headers, companion):
    options = with_defaults(lua_companion=companion)
    assert_same(both(options, method, path, headers=headers), exact_text=True,
                headers=["x-bookstore-version", "grpc-status", "grpc-message", "grpc-status-details-bin"])


def test_bodiless_requests_reach_the_backend_with_their_fields(wasm_envoy):
    assert_answer(wasm_envoy.request("DELETE", "/api/v1/echo/x/delete?query=3", headers={"MD-hello": "del"}),
                  200, {"response": "DELETE md-hello=del request=x query=3"})
    assert_answer(wasm_envoy.request("POST", "/v1/shelves"), 200, {"id": "3"})


@pytest.mark.parametrize("path, name", [("/v1/shelves/abc", "shelf"), ("/v1/shelves/1/books?pageSize=x", "pageSize")])
def test_bodiless_request_with_a_bad_value(both, path, name):
    """Deliberate difference in form only: both 400; ours JSON naming the field."""
    native, wasm = both(None, "GET", path)
    assert_own_error(wasm, 400, 3, name)
    assert_native_text_error(native, 400)


def test_many_concurrent_bodiless_requests(wasm_envoy):
    """Each request keeps its own gRPC stream and answer (bounded: 40 requests,
    8 at a time, over both workers)."""
    def one(n):
        r = wasm_envoy.get(f"/v1/shelves/{n}") if n % 2 else wasm_envoy.request("DELETE", f"/v1/shelves/{n + 1000}")
        return n, r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(40)))
    for n, status, body in results:
        if n % 2:
            assert (status, body) == (200, {"id": str(n), "theme": f"Shelf {n}"}), n
        else:
            assert (status, body) == (404, {"code": 5, "message": f"shelf {n + 1000} not found"}), n


def test_bodiless_and_bodied_requests_agree(wasm_envoy):
    """The same call with and without a body (Envoy's router vs the filter's own call)."""
    via_router = wasm_envoy.post("/v1/fail/5", body={})
    via_stream = wasm_envoy.request("POST", "/v1/fail/5")
    assert (via_router.status_code, via_router.content, via_router.headers["x-bookstore-version"]) == \
           (via_stream.status_code, via_stream.content, via_stream.headers["x-bookstore-version"])
    assert via_stream.headers["content-type"] == JSON
