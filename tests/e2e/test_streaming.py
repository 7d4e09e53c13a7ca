"""Server streaming (bookstore.v1.Bookstore/StreamBooks) against the native
transcoder: the JSON array (default), newline-delimited JSON and Server-Sent
Events, empty streams, errors before and after the first message, large
streams and max_response_body_size.

Both request paths are covered: POST (a body: Envoy's router carries the gRPC
call) and GET (no body: the filter's own gRPC stream). These tests check what
the client gets; test_stream_delivery.py checks when (POST streams are passed
on message by message, GET streams are answered once they ended).
"""

import json

import pytest

from checks import JSON, assert_own_error, assert_same, describe
from harness import with_defaults

ARRAY = None
NDJSON = with_defaults(print_options={"stream_newline_delimited": True})
SSE = with_defaults(print_options={"stream_sse_style_delimited": True})
FORMATS = {"array": ARRAY, "ndjson": NDJSON, "sse": SSE}

PATH = "/v1/shelves/1/books:stream"


def stream(both, options, method, **params):
    if method == "GET":
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return both(options, "GET", f"{PATH}?{query}")
    return both(options, "POST", PATH, body=params)


CASES = {
    "three messages": dict(count=3),
    "one message": dict(count=1),
    "error before any message": dict(count=0, fail_code=5),
    "permission error before any message": dict(count=0, fail_code=7, fail_message="no"),
}


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_stream_like_native(both, fmt, case, method):
    assert_same(stream(both, FORMATS[fmt], method, **CASES[case]), exact_text=True,
                headers=["x-bookstore-version"])


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_empty_array_stream_like_native(both, method):
    r = assert_same(stream(both, ARRAY, method, count=0), exact_text=True, headers=["x-bookstore-version"])
    assert (r.status_code, r.content) == (200, b"[]")


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("fmt", ["ndjson", "sse"])
def test_empty_delimited_stream(both, fmt, method):
    """Native answers 200 with an empty body; so do we. Envoy's local reply drops
    the content-type of an empty body, so only status and body are compared."""
    native, wasm = stream(both, FORMATS[fmt], method, count=0)
    assert (native.status_code, native.content) == (200, b"")
    assert (wasm.status_code, wasm.content) == (200, b""), describe(wasm)


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_array_error_after_messages(both, method, filter_flavour):
    """Native closes the array and loses the status; we give the same body. The Wasm
    build holds data until its 10 ms tick, so a stream that ends within it still has
    its headers and keeps the status in grpc-status / grpc-message headers; the
    dynamic module passes each message on at once, so the headers are gone by then
    and the status is in the trailers (which HTTP/1.1 clients do not see), as native."""
    native, wasm = stream(both, ARRAY, method, count=2, fail_code=9, fail_message="late")
    assert (wasm.status_code, wasm.headers["content-type"], wasm.content) == \
        (native.status_code, native.headers["content-type"], native.content)
    assert len(wasm.json()) == 2
    if filter_flavour == "wasm":
        assert (wasm.headers.get("grpc-status"), wasm.headers.get("grpc-message")) == ("9", "late")


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_ndjson_error_after_messages_is_a_final_record(both, method):
    native, wasm = stream(both, NDJSON, method, count=2, fail_code=9, fail_message="late")
    assert native.content.count(b"\n") == 2  # native drops the error
    assert wasm.status_code == 200
    assert wasm.content.startswith(native.content), describe(wasm)
    lines = [json.loads(line) for line in wasm.content.splitlines()]
    assert lines[-1] == {"error": {"code": 9, "message": "late"}}
    assert lines[:2] == [json.loads(x) for x in native.content.splitlines()]


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_sse_error_after_messages_is_an_error_event(both, method):
    native, wasm = stream(both, SSE, method, count=1, fail_code=14, fail_message="down")
    assert (wasm.status_code, wasm.headers["content-type"]) == (200, "text/event-stream")
    assert wasm.content.startswith(native.content), describe(wasm)
    tail = wasm.content[len(native.content):]
    assert tail == b'event: error\ndata: {"code":14,"message":"down"}\n\n'


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_many_messages_like_native(both, method):
    pair = stream(both, ARRAY, method, count=300, title_bytes=1000)
    r = assert_same(pair, exact_text=True)
    assert len(r.json()) == 300


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_pretty_printed_ndjson_like_native(both, method):
    options = with_defaults(print_options={"stream_newline_delimited": True, "add_whitespace": True})
    assert_same(stream(both, options, method, count=2), exact_text=True)


def test_slow_stream_arrives_whole(both):
    pair = stream(both, NDJSON, "POST", count=3, delay_ms=200)
    assert_same(pair, exact_text=True)


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_stream_over_max_response_body_size(envoy_factory, method):
    options = with_defaults(max_response_body_size=20000)
    wasm = envoy_factory("filter", options)
    small = wasm.post(PATH, body={"count": 3}) if method == "POST" else wasm.get(f"{PATH}?count=3")
    assert small.status_code == 200 and len(small.json()) == 3
    # The first message is already over the limit: nothing was sent, so the whole answer is the error.
    big = (wasm.post(PATH, body={"count": 3, "title_bytes": 30000}) if method == "POST"
           else wasm.get(f"{PATH}?count=3&title_bytes=30000"))
    assert_own_error(big, 500, 13, "max_response_body_size")


COVER = "/v1/covers:stream"


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("chunks", [1, 3])
def test_http_body_stream_like_native(both, method, chunks):
    """google.api.HttpBody messages: the first one's content type, data concatenated."""
    pair = (both(None, "POST", COVER, body={"chunks": chunks}) if method == "POST"
            else both(None, "GET", f"{COVER}?chunks={chunks}"))
    r = assert_same(pair, exact_text=True)
    assert r.content == b"".join(f"line {i}\n".encode() for i in range(1, chunks + 1))
    assert r.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_empty_http_body_stream(both, method):
    """Native answers 200 with an empty body; so do we (without a content-type:
    Envoy's local reply drops it for an empty body, see test_empty_delimited_stream)."""
    native, wasm = (both(None, "POST", COVER, body={"chunks": 0}) if method == "POST"
                    else both(None, "GET", f"{COVER}?chunks=0"))
    assert (native.status_code, native.content) == (wasm.status_code, wasm.content) == (200, b"")


ONE_BYTE = {"x-response-chunk-bytes": "1"}


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_stream_sent_in_one_byte_chunks_like_native(both, fmt, method):
    """The server cuts its reply into 1-byte HTTP/2 DATA frames: every length
    prefix and message is split across body callbacks."""
    if method == "GET":
        pair = both(FORMATS[fmt], "GET", f"{PATH}?count=3", headers=ONE_BYTE)
    else:
        pair = both(FORMATS[fmt], "POST", PATH, body={"count": 3}, headers=ONE_BYTE)
    r = assert_same(pair, exact_text=True)
    assert r.content.count(b"Book ") == 3


def test_unary_reply_in_one_byte_chunks_like_native(both):
    r = assert_same(both(None, "POST", "/v1/types:echo", body={"stringValue": "ab" * 40, "int64Value": "7"},
                         headers=ONE_BYTE), exact_text=True)
    assert r.json()["int64Value"] == "7"
