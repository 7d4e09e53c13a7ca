"""gRPC answers compressed by the server (grpc-encoding gzip / deflate, the
compressed-flag bit set on each message) are decompressed before JSON.

The example service compresses only for clients that send
`grpc-accept-encoding`; REST clients' headers reach it as gRPC metadata, so a
REST request carrying that header gets a compressed gRPC answer behind Envoy.
"""

import pytest

from checks import assert_answer, describe
from harness import grpc_call, with_defaults

NDJSON = with_defaults(print_options={"stream_newline_delimited": True})


def test_backend_really_compresses(example_service):
    r = grpc_call(example_service.port, "/bookstore.v1.Bookstore/ListShelves", b"",
                  metadata={"grpc-accept-encoding": "gzip"})
    assert r.headers.get("grpc-encoding") == "gzip"
    assert r.body[0] == 1, "compressed-flag bit"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_unary_answer(wasm_envoy, native_envoy, encoding):
    headers = {"grpc-accept-encoding": encoding}
    plain = wasm_envoy.post("/v1/shelves", body={"id": 7, "theme": "Zip"})
    r = wasm_envoy.post("/v1/shelves", body={"id": 7, "theme": "Zip"}, headers=headers)
    assert_answer(r, 200, {"id": "7", "theme": "Zip"})
    assert r.content == plain.content
    # What native makes of the same answer (recorded, not required).
    n = native_envoy.post("/v1/shelves", body={"id": 7, "theme": "Zip"}, headers=headers)
    print("native:", describe(n))


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_stream(envoy_factory, encoding):
    wasm = envoy_factory("filter", NDJSON)
    body = {"count": 3, "title_bytes": 5000}
    plain = wasm.post("/v1/shelves/1/books:stream", body=body)
    r = wasm.post("/v1/shelves/1/books:stream", body=body, headers={"grpc-accept-encoding": encoding})
    assert r.status_code == 200, describe(r)
    assert r.content == plain.content and r.content.count(b"\n") == 3


def test_compression_bomb_is_bounded(envoy_factory):
    """A message that inflates past max_response_body_size is refused, not inflated."""
    wasm = envoy_factory("filter", with_defaults(max_response_body_size=50000))
    body = {"count": 1, "title_bytes": 200000}  # 200 kB of 'x' gzips to a few hundred bytes
    r = wasm.post("/v1/shelves/1/books:stream", body=body, headers={"grpc-accept-encoding": "gzip"})
    assert r.status_code == 500, describe(r)
    assert "50000" in r.json()["message"]
