"""Live delivery of server streams sent by requests with a body: each message
reaches the client as soon as its gRPC frame is complete (within the filter's
10 ms flush tick), measured by arrival time against a slow stream; errors and
limits that strike after messages went out end the body in a parseable way.

A request without a body (GET) is answered by the filter's own gRPC stream,
which Envoy 1.40 only lets it answer at the end: see test_streaming.py and the
README's streaming section.
"""

import json
import time

import pytest
import requests

from harness import with_defaults

PATH = "/v1/shelves/1/books:stream"
NDJSON = with_defaults(print_options={"stream_newline_delimited": True})
SSE = with_defaults(print_options={"stream_sse_style_delimited": True})
FORMATS = {"array": None, "ndjson": NDJSON, "sse": SSE}


def timed_post(envoy, body):
    """POSTs and returns (response, [(seconds since the request, chunk)], total seconds)."""
    start = time.monotonic()
    chunks = []
    with requests.post(envoy.base_url + PATH, json=body, stream=True, timeout=30) as r:
        for chunk in r.iter_content(chunk_size=None):
            chunks.append((time.monotonic() - start, chunk))
        total = time.monotonic() - start
    return r, chunks, total


@pytest.mark.parametrize("fmt", FORMATS)
def test_first_message_arrives_before_the_stream_ends(envoy_factory, fmt):
    """Four messages 400 ms apart: the first must reach the client long before
    the last is sent (native Envoy streams too; both bodies must be equal)."""
    body = {"count": 4, "delay_ms": 400}
    wasm, native = envoy_factory("filter", FORMATS[fmt]), envoy_factory("native", FORMATS[fmt])
    r, chunks, total = timed_post(wasm, body)
    assert r.status_code == 200
    assert total > 1.1, f"the stream should last about 1.2 s, took {total:.2f} s"
    first = chunks[0][0]
    assert b"Book 1" in chunks[0][1], chunks[0]
    assert first < total - 0.8, f"first bytes after {first:.2f} s of a {total:.2f} s stream: not streamed"
    assert len(chunks) >= 4, [round(t, 2) for t, _ in chunks]
    whole = b"".join(c for _, c in chunks)
    n = requests.post(native.base_url + PATH, json=body, timeout=30)
    assert (r.headers["content-type"], whole) == (n.headers["content-type"], n.content)


def test_error_after_sent_messages_ends_ndjson_with_a_record(envoy_factory):
    r, chunks, _ = timed_post(envoy_factory("filter", NDJSON),
                              {"count": 3, "delay_ms": 200, "fail_code": 9, "fail_message": "late"})
    lines = b"".join(c for _, c in chunks).decode().splitlines()
    assert r.status_code == 200 and len(lines) == 4, lines
    assert [json.loads(line)["name"] for line in lines[:3]] == [f"shelves/1/books/{i}" for i in (1, 2, 3)]
    assert json.loads(lines[3]) == {"error": {"code": 9, "message": "late"}}


def test_error_after_sent_messages_ends_sse_with_an_error_event(envoy_factory):
    r, chunks, _ = timed_post(envoy_factory("filter", SSE),
                              {"count": 2, "delay_ms": 200, "fail_code": 10, "fail_message": "gone"})
    events = b"".join(c for _, c in chunks).decode().split("\n\n")
    assert r.status_code == 200 and r.headers["content-type"] == "text/event-stream"
    assert events[-1] == "" and events[-2] == 'event: error\ndata: {"code":10,"message":"gone"}', events
    assert [json.loads(e.removeprefix("data: "))["title"] for e in events[:2]] == ["Book 1", "Book 2"]


def test_error_after_sent_messages_closes_the_array(envoy_factory):
    """Headers went out with the first message: the array is closed (valid
    JSON), and the status travels in the HTTP trailers (grpc-status)."""
    r, chunks, _ = timed_post(envoy_factory("filter"), {"count": 2, "delay_ms": 200, "fail_code": 9})
    assert r.status_code == 200
    assert [b["title"] for b in json.loads(b"".join(c for _, c in chunks))] == ["Book 1", "Book 2"]


def test_limit_reached_after_sent_messages_ends_with_an_error_record(envoy_factory):
    options = with_defaults(max_response_body_size=20000, print_options={"stream_newline_delimited": True})
    wasm = envoy_factory("filter", options)
    r, chunks, _ = timed_post(wasm, {"count": 60, "delay_ms": 15, "title_bytes": 1000})
    lines = b"".join(c for _, c in chunks).decode().splitlines()
    assert r.status_code == 200 and 1 < len(lines) < 60, len(lines)
    error = json.loads(lines[-1])["error"]
    assert error["code"] == 13 and "max_response_body_size (20000 bytes)" in error["message"], error
    assert all("name" in json.loads(line) for line in lines[:-1])
    # The worker is fine afterwards.
    again = wasm.post(PATH, body={"count": 2})
    assert again.status_code == 200 and len(again.text.splitlines()) == 2


def test_many_slow_streams_at_once(envoy_factory):
    """Several streams held and released by the same worker's tick at once."""
    import concurrent.futures
    wasm = envoy_factory("filter", NDJSON)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: timed_post(wasm, {"shelf": i, "count": 5, "delay_ms": 50}), range(16)))
    for i, (r, chunks, _) in enumerate(results):
        lines = b"".join(c for _, c in chunks).decode().splitlines()
        assert [json.loads(line)["name"] for line in lines] == [f"shelves/{i}/books/{k}" for k in range(1, 6)]


def test_http_body_stream_is_passed_on_chunk_by_chunk(envoy_factory):
    wasm = envoy_factory("filter")
    start = time.monotonic()
    with requests.post(wasm.base_url + "/v1/covers:stream", json={"chunks": 4, "delay_ms": 400},
                       stream=True, timeout=30) as r:
        chunks = [(time.monotonic() - start, c) for c in r.iter_content(chunk_size=None)]
    total = time.monotonic() - start
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert b"".join(c for _, c in chunks) == b"line 1\nline 2\nline 3\nline 4\n"
    assert chunks[0][1].startswith(b"line 1") and chunks[0][0] < total - 0.8, [(round(t, 2), c) for t, c in chunks]
