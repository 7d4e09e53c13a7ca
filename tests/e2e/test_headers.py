"""Headers: request headers reaching the backend as gRPC metadata, the
x-envoy-original-* headers, and native gRPC requests passing through the filter
untouched, compared with Envoy's native transcoder.

`GET /v1/metadata` answers with the metadata the backend received (one
comma-joined value per key).
"""

import pytest

from checks import JSON, assert_same
from harness import with_defaults

SENT = {
    "x-custom": "1",
    "MD-hello": "world",
    "User-Agent": "e2e-agent/1.0",
    "Authorization": "Bearer token",
    "X-Mixed-Case": "Value With Spaces",
    "x-utf8": "caf\u00e9".encode().decode("latin1"),  # raw UTF-8 bytes on the wire
    "Accept": "application/json",
    # Hop-by-hop headers: never metadata.
    "Connection": "keep-alive",
    "Keep-Alive": "timeout=5",
    "Proxy-Connection": "keep-alive",
}
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host", "content-length"}

# Metadata that differs between two requests, or on a bodiless request when the
# Wasm filter makes the gRPC call itself (without its Lua companion) through
# Envoy's async gRPC client while native goes through the router: deadline
# headers, and the async client's internal mark.
DIFFERENT = {
    "x-request-id",                     # a fresh id per request
    "x-envoy-expected-rq-timeout-ms",   # the router's (native only)
    "grpc-timeout",                     # the filter's deadline, 15S unless the client sent one (ours only)
    "x-envoy-internal",                 # set by Envoy's async client (ours only)
}


def metadata(r):
    assert r.status_code == 200, r.text
    return r.json()["metadata"]


def test_request_headers_reach_the_backend_like_native(both):
    native, wasm = (metadata(r) for r in both(None, "GET", "/v1/metadata", headers=SENT))
    assert {k: v for k, v in wasm.items() if k not in DIFFERENT} == {k: v for k, v in native.items() if k not in DIFFERENT}
    for key, value in [("x-custom", "1"), ("md-hello", "world"), ("user-agent", "e2e-agent/1.0"),
                       ("authorization", "Bearer token"), ("x-mixed-case", "Value With Spaces"), ("accept", JSON),
                       ("content-type", "application/grpc"), ("te", "trailers"),
                       ("x-envoy-original-path", "/v1/metadata"), ("x-envoy-original-method", "GET")]:
        assert wasm.get(key) == value, (key, wasm)


def test_no_hop_by_hop_or_pseudo_headers_in_metadata(both):
    for md in (metadata(r) for r in both(None, "GET", "/v1/metadata?", headers=SENT)):
        assert not {k for k in md if k.startswith(":")}, md
        assert not (HOP_BY_HOP & set(md)), md


@pytest.mark.parametrize("companion", [True, False])
def test_metadata_differences_on_bodiless_requests(both, filter_flavour, companion):
    """A request without a body goes through the router, with the module and with the
    Wasm build's Lua companion: the same metadata as native. Deliberate difference
    (Envoy 1.40 Wasm host) without the companion: the Wasm filter sends it itself through
    Envoy's async gRPC client, which adds x-envoy-internal: true and no
    x-envoy-expected-rq-timeout-ms; the filter sends the client's grpc-timeout, or its
    default deadline 15S."""
    options = with_defaults(lua_companion=companion)
    native, wasm = (metadata(r) for r in both(options, "GET", "/v1/metadata"))
    if companion or filter_flavour == "dynmod":
        assert "grpc-timeout" not in wasm and "x-envoy-internal" not in wasm, wasm
        assert wasm["x-envoy-expected-rq-timeout-ms"] == native["x-envoy-expected-rq-timeout-ms"] == "15000"
        assert {k: v for k, v in wasm.items() if k != "x-request-id"} == \
            {k: v for k, v in native.items() if k != "x-request-id"}
        return
    assert wasm["grpc-timeout"] == "15S" and "grpc-timeout" not in native
    assert wasm["x-envoy-internal"] == "true"
    assert native["x-envoy-expected-rq-timeout-ms"] == "15000"
    native, wasm = (metadata(r) for r in both(options, "GET", "/v1/metadata", headers={"grpc-timeout": "3S"}))
    assert wasm["grpc-timeout"] == native["grpc-timeout"] == "3S"


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/api/v1/echo/x/get", None),
    ("DELETE", "/api/v1/echo/x/delete", None),
    ("POST", "/api/v1/echo/x/post", {}),
    ("PUT", "/api/v1/echo/x/put", {"query": "1"}),
    ("PATCH", "/api/v1/echo/x/patch", {"query": "2"}),
    ("POST", "/api/v1/echo/x/post", b""),
])
def test_metadata_header_on_every_path(both, method, path, body):
    """Requests with and without a body carry the headers as metadata."""
    r = assert_same(both(None, method, path, headers={"MD-hello": "every"}, body=body))
    assert r.json()["response"].startswith(f"{method} md-hello=every ")


def test_original_path_and_method_like_native(both, wasm_envoy, native_envoy):
    """x-envoy-original-path / -method carry the REST request, as native sets
    them; the access log (REQ(X-ENVOY-ORIGINAL-PATH?:PATH)) shows the REST path."""
    options = with_defaults(ignore_unknown_query_parameters=True)  # GetMetadata takes no parameters
    native, wasm = (metadata(r) for r in both(options, "GET", "/v1/metadata?a=1&b=%20"))
    for key in ("x-envoy-original-path", "x-envoy-original-method"):
        assert wasm[key] == native[key]
    assert wasm["x-envoy-original-path"] == "/v1/metadata?a=1&b=%20"
    # With a body: visible in the access log.
    for envoy in (native_envoy, wasm_envoy):
        mark = envoy.log_size()
        assert envoy.post("/v1/shelves/5/books?x=", body={"title": "t"}).status_code in (200,)
        envoy.wait_for_log(r'access: "POST /v1/shelves/5/books\?x= HTTP/1.1" 200 ', since=mark)


# ------------------------------------------------------------------ native gRPC

def _varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


VOLATILE = {"date", "x-envoy-upstream-service-time"}

GRPC_CALLS = [
    # (id, path, request message, metadata)
    ("ListShelves", "/bookstore.v1.Bookstore/ListShelves", b"", None),
    ("GetShelf", "/bookstore.v1.Bookstore/GetShelf", b"\x08\x02", None),
    ("GetShelf not found", "/bookstore.v1.Bookstore/GetShelf", b"\x08\xe9\x07", None),
    ("Fail with trailers", "/bookstore.v1.Bookstore/Fail", b"\x08\x05", None),
    ("Fail trailers-only", "/bookstore.v1.Bookstore/Fail", b"\x08\x0e\x18\x01", None),
    ("EchoGet", "/echo.v1.EchoService/EchoGet", b"\x0a\x02hi\x10\x07", {"md-hello": "grpc"}),
    ("unknown method", "/bookstore.v1.Bookstore/Nope", b"", None),
    ("unknown service", "/nope.v1.Nope/Nope", b"", None),
    ("garbage message", "/bookstore.v1.Bookstore/GetShelf", b"\xff\xff\xff", None),
    ("large message", "/bookstore.v1.Bookstore/Unannotated",
     b"\x08\x09\x12" + _varint(300_000) + b"x" * 300_000, None),
]


@pytest.mark.parametrize("path, message, md", [c[1:] for c in GRPC_CALLS], ids=[c[0] for c in GRPC_CALLS])
def test_native_grpc_passes_through_untouched(native_envoy, wasm_envoy, path, message, md):
    """content-type application/grpc: the filter lets the call through as is,
    errors included (status in trailers, details untouched)."""
    native, wasm = native_envoy.grpc(path, message, md), wasm_envoy.grpc(path, message, md)
    assert (wasm.http_status, wasm.grpc_status, wasm.grpc_message) == (native.http_status, native.grpc_status, native.grpc_message)
    assert wasm.messages == native.messages
    assert wasm.trailers == native.trailers
    assert {k: v for k, v in wasm.headers.items() if k not in VOLATILE} == \
           {k: v for k, v in native.headers.items() if k not in VOLATILE}
    assert wasm.reset is None
    assert wasm.headers.get("content-type", "").startswith("application/grpc")


def test_native_grpc_error_details_are_not_converted(wasm_envoy):
    r = wasm_envoy.grpc("/bookstore.v1.Bookstore/Fail", b"\x08\x05")
    assert (r.http_status, r.grpc_status, r.grpc_message) == (200, 5, "failure requested")
    assert "grpc-status-details-bin" in r.trailers and r.body == b""


def test_native_grpc_metadata_reaches_the_backend(wasm_envoy):
    r = wasm_envoy.grpc("/bookstore.v1.Bookstore/GetMetadata", b"", {"x-custom": "grpc-md"})
    assert r.grpc_status == 0
    assert b"\n\x08x-custom\x12\x07grpc-md" in r.messages[0]
    # Untranscoded: no x-envoy-original-path.
    assert b"x-envoy-original-path" not in r.messages[0]


@pytest.mark.parametrize("ctype", ["application/grpc+proto"])
def test_grpc_subtype_content_type_passes_through(native_envoy, wasm_envoy, ctype):
    """application/grpc+<subtype> is gRPC for Envoy: passed through, not transcoded
    (here over HTTP/1.1, which Envoy forwards to the HTTP/2 backend)."""
    answers = [e.request("POST", "/bookstore.v1.Bookstore/ListShelves", headers={"content-type": ctype},
                         body=b"\0\0\0\0\0") for e in (native_envoy, wasm_envoy)]
    assert answers[0].status_code == answers[1].status_code
    assert answers[0].headers.get("content-type") == answers[1].headers.get("content-type")
    assert answers[1].headers.get("content-type", "").startswith("application/grpc")


def test_response_headers_from_initial_metadata(both):
    """x-bookstore-version (initial metadata) reaches the client on both paths,
    on success and on errors (also when the error is trailers-only)."""
    for method, path, body in [("GET", "/v1/shelves", None), ("POST", "/v1/shelves", {}),
                               ("GET", "/v1/shelves/700", None), ("POST", "/v1/fail/5", {"trailers_only": True}),
                               ("GET", "/v1/fail/5?trailers_only=true", None)]:
        r = assert_same(both(None, method, path, body=body), headers=["x-bookstore-version"])
        assert r.headers.get("x-bookstore-version") == "1", (method, path)
