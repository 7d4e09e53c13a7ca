"""Client and bidirectional streaming (bookstore.v1.Bookstore/CreateBooks and
EchoBooks): a JSON array (as native Envoy takes it) or newline-delimited JSON
request body becomes one gRPC message per element, sent as each element is
parsed, with the URL's bindings in the first message (as native binds them).
Half-duplex over HTTP/1.1."""

import json
import socket
import time

import pytest

from checks import assert_own_error, assert_same, describe

BATCH = "/v1/shelves/7/books:batchCreate"
ECHO = "/v1/books:echo"
BOOKS = [{"title": "a"}, {"title": "b", "pages": 3}, {"title": "c"}]


def raw(body: str):
    """A body sent as it is (the harness would JSON-encode a str)."""
    return body.encode()


def test_array_body_is_one_message_per_element_like_native(both):
    r = assert_same(both(None, "POST", BATCH, body=BOOKS), exact_text=True)
    assert r.json() == {"count": 3, "titles": ["a", "b", "c"], "shelves": ["7", "0", "0"]}


def test_empty_array_is_a_stream_without_messages_like_native(both):
    r = assert_same(both(None, "POST", BATCH, body=[]), exact_text=True)
    assert r.json() == {}


def test_newline_delimited_body(wasm_envoy):
    body = "\n".join(json.dumps(b) for b in BOOKS) + "\n"
    r = wasm_envoy.post(BATCH, body=raw(body), headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200, describe(r)
    assert r.json() == {"count": 3, "titles": ["a", "b", "c"], "shelves": ["7", "0", "0"]}


@pytest.mark.parametrize("body,needle", [
    ('[{"title": "a"}, ', "before the JSON array was closed"),
    ('[{"title": "a"},]', "malformed after element 1"),
    ('[{"title": "a"}] {}', "after the closing `]`"),
    ('[{"title": "a"}, {"title": 5}]', "element 2 of the request stream"),
    ('{"title": "a"} {"title": ', "inside element 2"),
])
def test_malformed_stream_bodies_are_refused(wasm_envoy, body, needle):
    assert_own_error(wasm_envoy.post(BATCH, body=raw(body)), 400, 3, needle)


def test_backend_error_in_the_middle_of_the_stream(both):
    native, wasm = both(None, "POST", BATCH, body=[{"title": "a"}, {"title": "fail"}, {"title": "c"}])
    assert (wasm.status_code, native.status_code) == (400, 400), describe(wasm)


def test_bidi_stream_like_native(both):
    r = assert_same(both(None, "POST", ECHO, body=BOOKS), exact_text=True)
    assert [b["title"] for b in r.json()] == ["A", "B", "C"]


def test_bidi_first_answer_arrives_while_the_request_body_is_still_open(wasm_envoy):
    """Elements go upstream as they are parsed and answers come back as they
    are made: the echo of the first element is read before the body ends."""
    host, port = wasm_envoy.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"POST {ECHO} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  "transfer-encoding: chunked\r\n\r\n".encode())

        def chunk(data: str):
            s.sendall(f"{len(data):x}\r\n{data}\r\n".encode())

        chunk('[{"title": "first"}')
        seen = b""
        deadline = time.monotonic() + 5
        while b"FIRST" not in seen and time.monotonic() < deadline:
            seen += s.recv(65536)
        assert b"FIRST" in seen, seen
        assert b"SECOND" not in seen
        chunk(', {"title": "second"}]')
        s.sendall(b"0\r\n\r\n")
        while not seen.endswith(b"0\r\n\r\n") and time.monotonic() < deadline + 5:
            data = s.recv(65536)
            if not data:
                break
            seen += data
    head, _, body = seen.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"SECOND" in body and body.rstrip().endswith(b"0"), body
