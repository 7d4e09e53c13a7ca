"""The harness's differential helper on the baseline requests: the Wasm filter
must answer like Envoy's native transcoder (status, content type, JSON value)."""

import pytest

CASES = [
    ("GET", "/v1/shelves", None, None),
    ("POST", "/v1/shelves", None, {"theme": "Poetry"}),
    ("GET", "/api/v1/echo/hello/get?query=666", {"MD-hello": "world"}, None),
    ("GET", "/v1/fail/5", None, None),
]


@pytest.mark.parametrize("method, path, headers, body", CASES, ids=[f"{m} {p}" for m, p, _, _ in CASES])
def test_same_answer_as_native(both, method, path, headers, body):
    native, wasm = both(None, method, path, headers=headers, body=body)
    assert wasm.status_code == native.status_code, wasm.text
    assert wasm.headers["content-type"] == native.headers["content-type"]
    assert wasm.json() == native.json()


def test_native_grpc_passes_through_the_filter(wasm_envoy, native_envoy):
    path = "/bookstore.v1.Bookstore/GetShelf"
    request = b"\x08\x02"  # GetShelfRequest{shelf: 2}
    native, wasm = native_envoy.grpc(path, request), wasm_envoy.grpc(path, request)
    assert (wasm.http_status, wasm.grpc_status, wasm.messages) == (native.http_status, native.grpc_status, native.messages)
    assert wasm.grpc_status == 0
