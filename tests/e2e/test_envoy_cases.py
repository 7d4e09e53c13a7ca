"""Cases from Envoy's own grpc_json_transcoder integration tests, run differentially.

Envoy tests its transcoder on a bookstore service with a scripted upstream and
checks the gRPC messages the upstream received. Here the same shapes
(protos/cases/v1/cases.proto) go through the native filter and ours, in one
Envoy 1.40 binary, in front of one scripted backend (fake_backend.py) that
records every request: each test compares what the client got AND what the
backend received. The backend echoes the request's frames unless the request
names another script with `x-fault`.

Where we differ on purpose, or where the Wasm host cannot do what native does,
the test says so and pins both answers (README, "Where we differ from the
native filter" and "Known limits").
"""

from __future__ import annotations

import base64
import subprocess
import sys
from typing import Callable

import pytest
import requests
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from checks import JSON, assert_native_text_error, assert_own_error, assert_same, describe
from fake_backend import FakeBackend
from harness import REPO, Envoy, with_defaults

PROTOS = REPO / "tests" / "e2e" / "protos"


@pytest.fixture(scope="module")
def cases_set(e2e_dir) -> bytes:
    """cases.proto compiled by protoc (grpcio-tools), imports included."""
    out = e2e_dir / "cases.pb"
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"-I{REPO / 'descriptors'}",
                    "--include_imports", f"--descriptor_set_out={out}", "cases/v1/cases.proto"], check=True)
    return out.read_bytes()


@pytest.fixture(scope="module")
def types(cases_set):
    """Message classes of the set, by full name (to read what the backend received)."""
    pool = descriptor_pool.DescriptorPool()
    for f in descriptor_pb2.FileDescriptorSet.FromString(cases_set).file:
        pool.Add(f)
    return lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


@pytest.fixture(scope="module")
def backend():
    b = FakeBackend(default_fault="echo").start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def envoys(e2e_dir, cases_set, backend, filter_flavour):
    """envoys(flavour, edit=None, **options) -> Envoy in front of the scripted backend (started once per set);
    flavour "wasm" is our filter, whichever build is under test."""
    started: dict[str, Envoy] = {}

    def get(flavour: str, edit: Callable[[str], str] | None = None, edit_name: str = "", **options) -> Envoy:
        flavour = filter_flavour if flavour == "wasm" else flavour
        opts = with_defaults(services=["cases.v1.Cases"],
                             proto_descriptor_bin=base64.b64encode(cases_set).decode(), **options)
        key = f"{flavour}-{edit_name}-{sorted(options.items())}"
        if key not in started:
            workdir = e2e_dir / f"envoy-cases-{len(started):02d}-{flavour}"
            started[key] = Envoy(flavour, opts, backend, workdir, edit_config=edit).start()
        return started[key]

    yield get
    for envoy in started.values():
        envoy.stop()


def frames(body: bytes) -> list[bytes]:
    out = []
    while len(body) >= 5:
        size = int.from_bytes(body[1:5], "big")
        out.append(body[5:5 + size])
        body = body[5 + size:]
    return out


def decode(cls, message: bytes):
    """The message, or its bytes where protobuf's Python decoder gives up (over 100 levels deep)."""
    try:
        return cls.FromString(message)
    except DecodeError:
        return message


class Sent:
    """One request through both flavours: the answers and what the backend received each time."""

    def __init__(self, native, wasm, upstream_native, upstream_wasm):
        self.native, self.wasm = native, wasm
        self.upstream = {"native": upstream_native, "wasm": upstream_wasm}

    def same_upstream(self) -> list:
        assert self.upstream["wasm"] == self.upstream["native"], self.upstream
        return self.upstream["wasm"]


def empty_chunked():
    """A chunked body with no data (requests sends `0\\r\\n\\r\\n` for an empty generator)."""
    yield from ()


@pytest.fixture
def send(envoys, backend, types):
    """send(method, path, body=None, *, type=..., fault="echo", headers=None, edit=None, **options) -> Sent"""

    def run(method, path, body=None, *, type, fault="echo", headers=None, chunked=False, edit=None, edit_name="",
            **options) -> Sent:
        answers, upstream = {}, {}
        for flavour in ("native", "wasm"):
            envoy = envoys(flavour, edit, edit_name, **options)
            backend.received.clear()
            h = {"x-fault": fault, **(headers or {})}
            if chunked:
                answers[flavour] = requests.request(method, envoy.base_url + path, headers=h, data=empty_chunked(),
                                                    timeout=20)
            else:
                answers[flavour] = envoy.request(method, path, headers=h, body=body)
            upstream[flavour] = [[decode(types(type), m) for m in frames(b)] for _, b in backend.received]
        return Sent(answers["native"], answers["wasm"], upstream["native"], upstream["wasm"])

    return run


# ------------------------------------------------------------ bodies on rules without `body:`

AUTHOR = "cases.v1.Author"


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/echoAuthor", {"id": "1234", "gender": "FEMALE"}),
    ("POST", "/echoAuthor", {"firstName": "Ana", "lname": "Lu", "extra": {"a": [1, "x"]}}),
    ("PUT", "/authors/7", {"lname": "x"}),
    ("PUT", "/authors/7", {"id": "9"}),
    ("GET", "/authors/7", {"gender": "MALE"}),
    ("GET", "/authors/7?gender=MALE", None),
])
def test_a_body_on_a_rule_without_body_is_read(send, method, path, body):
    """Native reads it as the whole message (it gives no `body:` the field path of `body: "*"`)."""
    sent = send(method, path, body, type=AUTHOR)
    [[message]] = sent.same_upstream()
    assert_same((sent.native, sent.wasm))
    if body and "gender" in body:
        assert message.gender != 0, message


def test_a_bad_enum_in_a_body_on_a_rule_without_body_is_refused(send):
    sent = send("POST", "/echoAuthor", {"id": "1234", "gender": "PURPLE"}, type=AUTHOR)
    assert sent.same_upstream() == []
    assert_native_text_error(sent.native, 400, "PURPLE")
    assert_own_error(sent.wasm, 400, 3, "gender", "PURPLE")


def test_a_raw_body_on_a_rule_without_body_is_the_http_body(send):
    sent = send("POST", "/echoRawBody", b"hello \xe2\x9c\x93 raw", type="google.api.HttpBody",
                headers={"content-type": "text/plain; charset=utf-8"})
    [[message]] = sent.same_upstream()
    assert (message.content_type, message.data) == ("text/plain; charset=utf-8", b"hello \xe2\x9c\x93 raw")
    assert_same((sent.native, sent.wasm), exact_text=True)


def test_a_raw_body_over_max_request_body_size_is_refused(send):
    sent = send("POST", "/echoRawBody", b"x" * 300, type="google.api.HttpBody",
                headers={"content-type": "text/plain"}, max_request_body_size=100)
    assert sent.same_upstream() == []
    assert (sent.native.status_code, sent.wasm.status_code) == (413, 413), (describe(sent.native), describe(sent.wasm))
    assert_own_error(sent.wasm, 413, 8, "max_request_body_size")


# ------------------------------------------------------------ query parameters named by json_name

SHELF_REQUEST = "cases.v1.CreateShelfRequest"


@pytest.mark.parametrize("query", [
    "shelf.search%5Bdecoded%5D=Google",  # json_name `search[decoded]`, escaped on the wire
    "shelf.search[decoded]=Google",  # ... and as written
    "shelf.search%5Bencoded%5D=Google",  # json_name `search%5Bencoded%5D`: matches before decoding
    "shelf.search_decoded=Google",  # the proto name
    "shelf.theme=T&shelf.id=5",
])
def test_query_parameters_named_by_json_name(send, query):
    sent = send("POST", f"/shelf?{query}", {"theme": "body"}, type=SHELF_REQUEST, fault="empty")
    [[message]] = sent.same_upstream()
    assert message.shelf.search_decoded or message.shelf.search_encoded or message.shelf.id == 5, message
    assert_same((sent.native, sent.wasm))


@pytest.mark.parametrize("query", [
    "filter.search%5Bdecoded%5D=G&filter.theme=t",
    "filter.search_decoded=G",
    "filter.searchDecoded=G",  # not a name of the field (its json_name is set): both pass the request on
])
def test_query_parameters_named_by_json_name_without_body(send, query):
    sent = send("GET", f"/shelves/3?{query}", type="cases.v1.GetShelfRequest", fault="empty")
    sent.same_upstream()
    assert_same((sent.native, sent.wasm))


# ------------------------------------------------------------ empty client streams

RAW = "google.api.HttpBody"


@pytest.mark.parametrize("path", ["/streamBody", "/streamBodyUnbound"])
@pytest.mark.parametrize("how", ["chunked", "content-length: 0"])
def test_an_empty_raw_client_stream_sends_one_message_with_the_content_type(send, path, how):
    sent = send("POST", path, b"", type=RAW, fault="empty", chunked=how == "chunked",
                headers={"content-type": "image/png"})
    [[message]] = sent.same_upstream()
    assert (message.content_type, message.data) == ("image/png", b"")
    assert_same((sent.native, sent.wasm))


def test_a_raw_client_stream_keeps_its_bytes(send):
    sent = send("POST", "/streamBody", bytes(range(256)) * 64, type=RAW, fault="empty",
                headers={"content-type": "application/octet-stream"})
    [messages] = sent.upstream["wasm"]
    assert b"".join(m.data for m in messages) == bytes(range(256)) * 64
    assert messages[0].content_type == "application/octet-stream"
    [native] = sent.upstream["native"]
    assert b"".join(m.data for m in native) == bytes(range(256)) * 64
    assert_same((sent.native, sent.wasm))


@pytest.mark.parametrize("path", ["/bulk/shelves", "/bulk/shelvesWhole"])
@pytest.mark.parametrize("how", ["chunked", "no body"])
def test_an_empty_json_client_stream_is_refused(send, path, how):
    """An empty body is no JSON array: native answers 400 "Expected an array"."""
    sent = send("POST", path, None, type=SHELF_REQUEST, fault="empty", chunked=how == "chunked",
                headers={"content-type": JSON})
    assert sent.same_upstream() == []
    assert_native_text_error(sent.native, 400, "Expected an array")
    assert_own_error(sent.wasm, 400, 3, "empty", "`[]` for none")


def test_an_empty_json_array_is_a_stream_of_no_messages(send):
    sent = send("POST", "/bulk/shelves", [], type=SHELF_REQUEST, fault="empty")
    assert sent.same_upstream() == [[]]
    assert_same((sent.native, sent.wasm))


def test_a_trailing_comma_in_a_streamed_array_is_refused(send):
    """Deliberate difference: native accepts `[{...},]` and sends one message; we
    answer 400 naming the place (strict JSON: a client that writes this has a bug)."""
    sent = send("POST", "/bulk/shelves", b'[{"theme": "a"},]', type=SHELF_REQUEST, fault="empty",
                headers={"content-type": JSON})
    assert sent.upstream["native"] == [[sent.upstream["native"][0][0]]] and sent.native.status_code == 200
    assert_own_error(sent.wasm, 400, 3, "after element 1")


# ------------------------------------------------------------ trailers-only errors on server streams


@pytest.mark.parametrize("method, path", [("GET", "/shelves/37/books"), ("POST", "/shelves/37/books:list")])
def test_a_trailers_only_error_on_a_json_stream_is_an_empty_array(send, method, path):
    """Without convert_grpc_status, native writes the (empty) array it would have
    streamed, with the status in grpc-status/grpc-message headers."""
    sent = send(method, path, {} if method == "POST" else None, type="cases.v1.ListBooksRequest",
                fault="not-found-trailers-only", convert_grpc_status=False)
    assert sent.same_upstream() == [[sent.upstream["native"][0][0]]]
    r = assert_same((sent.native, sent.wasm), headers=["grpc-status", "grpc-message"], exact_text=True)
    assert (r.status_code, r.content, r.headers["grpc-status"]) == (404, b"[]", "5")


@pytest.mark.parametrize("method, path", [("GET", "/shelves/37/raw"), ("POST", "/shelves/37/raw:list")])
def test_a_trailers_only_error_on_an_http_body_stream(send, method, path):
    """Known limit: both answer 404 with an empty body and the status in headers,
    but a local reply with an empty body loses its content-type in Envoy (native
    edits the upstream's headers and keeps application/json)."""
    sent = send(method, path, {} if method == "POST" else None, type="cases.v1.ListBooksRequest",
                fault="not-found-trailers-only", convert_grpc_status=False)
    sent.same_upstream()
    for r in (sent.native, sent.wasm):
        assert (r.status_code, r.content, r.headers.get("grpc-status")) == (404, b"", "5"), describe(r)
    assert (sent.native.headers.get("content-type"), sent.wasm.headers.get("content-type")) == (JSON, None)


@pytest.mark.parametrize("path", ["/shelves/37/books", "/shelves/37/raw"])
def test_a_trailers_only_error_on_a_stream_with_conversion(send, path):
    sent = send("GET", path, type="cases.v1.ListBooksRequest", fault="not-found-trailers-only")
    sent.same_upstream()
    r = assert_same((sent.native, sent.wasm))
    assert (r.status_code, r.json()) == (404, {"code": 5, "message": "Shelf 37 not found"})


# ------------------------------------------------------------ deliberate differences and host limits


def nested_struct(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_a_deeply_nested_struct_is_refused(send):
    """Deliberate difference: a Struct nested 60 levels (120 protobuf message
    levels) native forwards, up to 98; we answer 400 past protobuf's decoder
    limit of 100 message levels (bounded recursion in the filter)."""
    sent = send("POST", "/echoAuthor", {"id": "1", "extra": nested_struct(60)}, type=AUTHOR, fault="empty")
    assert sent.native.status_code == 200 and len(sent.upstream["native"]) == 1
    assert sent.upstream["wasm"] == []
    assert_own_error(sent.wasm, 400, 3, "`extra`", "deeper than")
    sent = send("POST", "/echoAuthor", {"id": "1", "extra": nested_struct(30)}, type=AUTHOR, fault="empty")
    assert sent.same_upstream()
    assert_same((sent.native, sent.wasm))


def buffer_limit(limit: int) -> Callable[[str], str]:
    """The listener's per_connection_buffer_limit_bytes (Envoy's buffer limit for each request)."""
    return lambda text: text.replace("    filter_chains:\n",
                                     f"    per_connection_buffer_limit_bytes: {limit}\n    filter_chains:\n", 1)


def test_a_response_over_envoys_buffer_limit_is_answered_whole(send):
    """Deliberate difference: with a 64-byte buffer limit native cannot buffer a
    100-byte unary reply and fails it; we keep the body ourselves, within
    max_response_body_size, and answer it whole."""
    sent = send("POST", "/echoAuthor", {"id": "1"}, type=AUTHOR, fault="author-100", edit=buffer_limit(64),
                edit_name="limit64")
    assert sent.same_upstream()
    assert sent.native.status_code != 200, describe(sent.native)
    assert (sent.wasm.status_code, sent.wasm.json()) == (200, {"firstName": "x" * 95}), describe(sent.wasm)


def test_a_request_over_envoys_buffer_limit(send, filter_flavour):
    """Known limit of the Wasm host: native raises Envoy's buffer limit for the
    request to max_request_body_size; a Wasm filter cannot, so a body that
    arrives larger than the listener's per_connection_buffer_limit_bytes while
    the filter holds the request headers is refused by Envoy with 413 (which the
    filter turns into a JSON status). Bodies within the limit agree. The dynamic
    module raises the limit as native does, and answers like native."""
    small = {"id": "1", "firstName": "x" * 100}
    sent = send("POST", "/echoAuthor", small, type=AUTHOR, edit=buffer_limit(1024), edit_name="limit1024",
                max_request_body_size=8192)
    assert_same((sent.native, sent.wasm))
    big = {"id": "1", "firstName": "x" * 3000}
    sent = send("POST", "/echoAuthor", big, type=AUTHOR, edit=buffer_limit(1024), edit_name="limit1024",
                max_request_body_size=8192)
    assert sent.native.status_code == 200, describe(sent.native)
    if filter_flavour == "dynmod":
        assert_same((sent.native, sent.wasm))
        return
    assert_own_error(sent.wasm, 413, 8)
