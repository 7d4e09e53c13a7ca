"""Responses and errors: gRPC answers (messages, status, details, metadata)
turned into HTTP answers, compared with Envoy's native transcoder.

`Fail(code)` answers with that gRPC status and two details (a FailureDetail and
a google.rpc.ErrorInfo) in grpc-status-details-bin. By default its error comes
with real trailers (headers, an empty body, trailers); with `trailers_only`
set it is trailers-only (one header block), as tonic sends errors. GET requests
take the filter's own gRPC call, POST requests go through Envoy's router, so
the four shapes below cover both paths.
"""

import pytest

from checks import (JSON, assert_answer, assert_native_text_error, assert_own_error,
                    assert_passed_through, assert_same)
from harness import with_defaults

# gRPC code -> HTTP status (the table Envoy and grpc-gateway share).
HTTP_OF = {0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409,
           11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401, 17: 500}
NO_CONVERSION = with_defaults(convert_grpc_status=None)


def fail_status(code, message="failure requested"):
    return {"code": code, "message": message, "details": [
        {"@type": "type.googleapis.com/bookstore.v1.FailureDetail", "reason": "requested", "code": code},
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "FAIL_REQUESTED",
         "domain": "bookstore.example.com", "metadata": {"code": str(code)}},
    ]}


# (id, method, query, body)
SHAPES = [
    ("GET real trailers", "GET", "", None),
    ("GET trailers-only", "GET", "?trailers_only=true", None),
    ("POST real trailers", "POST", "", {"trailers_only": False}),
    ("POST trailers-only", "POST", "", {"trailers_only": True}),
]
SHAPE_PARAMS = pytest.mark.parametrize("method, query, body", [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])


@pytest.mark.parametrize("code", range(18))
@SHAPE_PARAMS
def test_grpc_status_becomes_http_status_and_json_like_native(both, code, method, query, body):
    """convert_grpc_status (the default options): the status and its decoded
    details become a google.rpc.Status body, byte for byte like native; the
    backend's initial metadata (x-bookstore-version) is passed on."""
    r = assert_same(both(None, method, f"/v1/fail/{code}{query}", body=body), exact_text=True,
                    headers=["x-bookstore-version", "grpc-status", "grpc-message"])
    if code == 0:
        assert_answer(r, 200, {})
        assert r.headers["grpc-status"] == "0"
    else:
        assert_answer(r, HTTP_OF[code], fail_status(code))
        assert "grpc-status" not in r.headers and "grpc-status-details-bin" not in r.headers
    assert r.headers["x-bookstore-version"] == "1"


@pytest.mark.parametrize("code", [0, 1, 3, 5, 8, 12, 14, 16, 17])
@SHAPE_PARAMS
def test_without_convert_grpc_status_like_native(both, code, method, query, body):
    """The status stays in grpc-status / grpc-message headers (grpc-message as the
    server sent it, percent-encoded; a trailers-only block keeps its
    grpc-status-details-bin too), the body is empty, the HTTP status mapped."""
    native, wasm = both(NO_CONVERSION, method, f"/v1/fail/{code}{query}", body=body)
    for name in ("grpc-status", "grpc-message", "grpc-status-details-bin", "x-bookstore-version"):
        assert wasm.headers.get(name) == native.headers.get(name), name
    assert wasm.status_code == native.status_code == HTTP_OF[code]
    if code:
        assert wasm.content == native.content == b""
        assert wasm.headers["grpc-message"] == "failure%20requested"
    else:
        assert wasm.json() == native.json() == {}


@SHAPE_PARAMS
def test_without_convert_grpc_status_errors_say_application_json(request, both, filter_flavour, method, query, body):
    """An error without a body still says application/json. Native does with real
    trailers and passes the upstream's application/grpc on for a trailers-only answer.
    The module writes its answer into the upstream response, as native does, and says
    application/json in both shapes."""
    if filter_flavour == "wasm":
        request.applymarker(pytest.mark.xfail(strict=True, reason=(
            "The Wasm build answers a unary request with a local reply (send_http_response: it "
            "cannot ask Envoy's buffer limit, which an answer written into the upstream response "
            "counts against), and Envoy's local reply drops content-type when the body is empty "
            "(Http::Utility::prepareLocalReply).")))
    native, ours = both(NO_CONVERSION, method, f"/v1/fail/5{query}", body=body)
    trailers_only = "trailers_only=true" in query or (body or {}).get("trailers_only")
    assert native.headers.get("content-type") == ("application/grpc" if trailers_only else JSON)
    assert ours.headers.get("content-type") == JSON


@pytest.mark.parametrize("message", ["hello wörld %", "100% sure: a/b?c=d&e", "tab\tand\nnewline", "日本語"])
@pytest.mark.parametrize("convert", [True, False])
def test_grpc_message_round_trips_like_native(both, message, convert):
    from urllib.parse import quote
    path = f"/v1/fail/3?message={quote(message, safe='')}"
    if convert:
        r = assert_same(both(None, "GET", path), exact_text=True)
        assert r.json()["message"] == message
    else:
        # The header as the server sent it (content-type: see the xfail above).
        native, wasm = both(NO_CONVERSION, "GET", path)
        assert wasm.status_code == native.status_code == 400
        assert wasm.headers["grpc-message"] == native.headers["grpc-message"]
        assert "%" in wasm.headers["grpc-message"]


def test_details_are_decoded_with_their_types(wasm_envoy):
    r = wasm_envoy.get("/v1/fail/5")
    assert_answer(r, 404, fail_status(5))
    # Field order as declared (reason before code), as protobuf prints.
    assert r.text.index('"reason":"requested"') < r.text.index('"code":5}')


@pytest.mark.parametrize("method, path, expected", [
    ("GET", "/v1/shelves/700", {"code": 5, "message": "shelf 700 not found"}),
    ("DELETE", "/v1/shelves/700", {"code": 5, "message": "shelf 700 not found"}),
    ("GET", "/v1/shelves/1/books/missing", {"code": 5, "message": "book shelves/1/books/missing not found"}),
])
def test_errors_without_details_like_native(both, method, path, expected):
    """No details: the body has no "details" key (proto3 JSON leaves empty fields out)."""
    r = assert_same(both(None, method, path), exact_text=True, headers=["x-bookstore-version"])
    assert_answer(r, 404, expected)


@pytest.mark.parametrize("print_options", [{"add_whitespace": True}, {"always_print_primitive_fields": True},
                                           {"preserve_proto_field_names": True, "always_print_enums_as_ints": True}])
@pytest.mark.parametrize("path", ["/v1/fail/5", "/v1/shelves/700", "/v1/fail/0"])
def test_errors_follow_the_print_options_like_native(both, print_options, path):
    options = with_defaults(print_options=print_options)
    assert_same(both(options, "GET", path), exact_text=True)


# ------------------------------------------------------------------ successful answers

def test_http_body_response_is_raw(both):
    r = assert_same(both(None, "GET", "/v1/shelves/1/books/2/cover"), exact_text=True,
                    headers=["x-bookstore-version", "grpc-status"])
    assert_answer(r, 200, b"\x89PNG cover of shelves/1/books/2", ctype="image/png")


def test_http_body_response_with_print_options(both):
    """print_options do not touch raw bodies."""
    options = with_defaults(print_options={"add_whitespace": True, "always_print_primitive_fields": True})
    r = assert_same(both(options, "GET", "/v1/archive/x"), exact_text=True)
    assert r.status_code == 200
    r = assert_same(both(options, "GET", "/v1/shelves/9/books/9/cover"), exact_text=True)
    assert r.content == b"\x89PNG cover of shelves/9/books/9"


@pytest.mark.parametrize("method, path", [("DELETE", "/v1/shelves/1"), ("GET", "/v1/fail/0")])
def test_empty_response_message_is_an_empty_object(both, method, path):
    r = assert_same(both(None, method, path), exact_text=True, headers=["grpc-status", "x-bookstore-version"])
    assert r.content == b"{}"


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/v1/shelves", None), ("POST", "/v1/shelves", {"theme": "x"}), ("GET", "/v1/shelves/1/books/2/cover", None),
    ("PUT", "/v1/shelves/1/books/2/cover", b"raw"),
])
def test_response_headers_like_native(both, method, path, body):
    """Initial metadata (x-bookstore-version) passed on; the unary reply's
    trailers moved into the headers (grpc-status: 0); no gRPC framing headers."""
    native, wasm = both(None, method, path, body=body)
    assert_same((native, wasm), headers=["x-bookstore-version", "grpc-status", "grpc-message", "grpc-encoding",
                                         "grpc-accept-encoding", "trailer", "te"])
    assert wasm.headers["x-bookstore-version"] == "1"
    assert wasm.headers["grpc-status"] == "0"


def test_response_body_on_a_plain_field(both):
    """Deliberate difference: response_body on a non-HttpBody field (GetBookTitle)
    is refused by native at load, so the harness strips that rule for native and
    the request is passed through there. Ours prints just the field."""
    native, wasm = both(None, "GET", "/v1/shelves/1/books/2/title")
    assert_answer(wasm, 200, "Title of shelves/1/books/2")
    assert wasm.content == b'"Title of shelves/1/books/2"'
    assert_passed_through(native)
    native, wasm = both(None, "GET", "/v1/shelves/1/books/missing/title")
    assert_answer(wasm, 404, {"code": 5, "message": "book shelves/1/books/missing not found"})


# ------------------------------------------------------------------ size limits

def test_max_request_body_size(both):
    """Deliberate difference: both answer 413; ours is a JSON google.rpc.Status
    (RESOURCE_EXHAUSTED) naming the limit, native's text/plain."""
    options = with_defaults(max_request_body_size=100)
    native, wasm = both(options, "POST", "/v1/shelves", body={"theme": "x" * 200})
    assert_answer(wasm, 413, {"code": 8, "message": "the request body is larger than max_request_body_size (100 bytes)"})
    assert_native_text_error(native, 413)
    r = assert_same(both(options, "POST", "/v1/shelves", body={"theme": "x" * 20}))
    assert_answer(r, 200, {"id": "3", "theme": "x" * 20})
    assert_same(both(options, "GET", "/v1/shelves"))


def test_max_response_body_size(both):
    """Deliberate difference: both answer 500; ours is a JSON google.rpc.Status
    (INTERNAL) naming the limit, native's text/plain."""
    options = with_defaults(max_response_body_size=50)
    for method, path, body in [("POST", "/v1/types:echo", {"stringValue": "x" * 100}), ("GET", "/v1/types/" + "x" * 80 + "/n", None)]:
        native, wasm = both(options, method, path, body=body)
        assert_own_error(wasm, 500, 13, "max_response_body_size")
        assert_native_text_error(native, 500)
    r = assert_same(both(options, "GET", "/v1/shelves/1"))
    assert_answer(r, 200, {"id": "1", "theme": "Shelf 1"})


@pytest.mark.parametrize("companion", [True, False])
def test_upstream_http_error_on_a_bodiless_request(both, filter_flavour, companion, request):
    """A bodiless request through the router (the module; the Wasm build with its Lua
    companion) gets the upstream's 431 passed on as native does; the Wasm filter's own
    call cannot (known limit, xfail)."""
    if filter_flavour == "wasm" and not companion:
        request.applymarker(pytest.mark.xfail(
            strict=True, reason="Not fixed in the Wasm build: the upstream's non-gRPC HTTP answer (tonic's 431 "
                                "for a 50 kB :path) to a bodiless request reaches the filter's own gRPC stream "
                                "only as gRPC status UNKNOWN with message 'via_upstream', so we answer 500; "
                                "native passes the upstream's 431 on."))
    native, wasm = both(with_defaults(lua_companion=companion), "GET", "/api/v1/echo/" + "a" * 50_000 + "/get")
    assert native.status_code == 431
    assert wasm.status_code == native.status_code
