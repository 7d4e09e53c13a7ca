"""Envoy's native grpc_json_transcoder in front of the example service.

Proves the harness (example service, rendered config, Envoy start/stop) on its
own, and pins down the reference behaviour the Wasm filter is compared with.
"""

import pytest

JSON = "application/json"


def test_list_shelves(native_envoy):
    r = native_envoy.get("/v1/shelves")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(JSON)
    # int64 is a JSON string in the proto3 JSON mapping.
    assert r.json() == {"shelves": [{"id": "1", "theme": "Fiction"}, {"id": "2", "theme": "History"}]}


@pytest.mark.parametrize("shelf, expected", [
    ({"theme": "Poetry"}, {"id": "3", "theme": "Poetry"}),
    ({"id": "7", "theme": "Maps"}, {"id": "7", "theme": "Maps"}),
    ({"id": 8, "theme": "Numbers"}, {"id": "8", "theme": "Numbers"}),
])
def test_create_shelf_with_body(native_envoy, shelf, expected):
    r = native_envoy.post("/v1/shelves", body=shelf)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(JSON)
    assert r.json() == expected


def test_echo_get_with_query_and_metadata_header(native_envoy):
    r = native_envoy.get("/api/v1/echo/hello/get?query=666", headers={"MD-hello": "world"})
    assert r.status_code == 200, r.text
    assert r.json() == {"response": "GET md-hello=world request=hello query=666"}


def test_fail_maps_grpc_status_to_http(native_envoy):
    r = native_envoy.get("/v1/fail/5")
    assert r.status_code == 404, r.text
    assert r.headers["content-type"].startswith(JSON)
    # convert_grpc_status: the status (with the grpc-status-details-bin details)
    # becomes the JSON body; no grpc-status header reaches the client.
    assert "grpc-status" not in r.headers
    assert r.json() == {
        "code": 5,
        "message": "failure requested",
        "details": [
            {"@type": "type.googleapis.com/bookstore.v1.FailureDetail", "reason": "requested", "code": 5},
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "FAIL_REQUESTED",
             "domain": "bookstore.example.com", "metadata": {"code": "5"}},
        ],
    }


def test_log_has_access_lines_and_no_wasm_failures(native_envoy):
    mark = native_envoy.log_size()
    native_envoy.get("/v1/shelves")
    # %REQ(:METHOD)% is logged after transcoding: POST, the gRPC method.
    native_envoy.wait_for_log(r'access: "POST /v1/shelves HTTP/1.1" 200 ', since=mark)
    assert native_envoy.wasm_failures() == []


def test_native_grpc_passes_through(native_envoy):
    # ListShelves(google.protobuf.Empty) as a native gRPC call on the same listener.
    r = native_envoy.grpc("/bookstore.v1.Bookstore/ListShelves")
    assert r.http_status == 200
    assert r.grpc_status == 0, r.grpc_message
    assert r.headers["content-type"].startswith("application/grpc")
    # ListShelvesResponse{shelves: [{id: 1, theme: "Fiction"}, {id: 2, theme: "History"}]}
    assert r.messages == [b"\n\x0b\x08\x01\x12\x07Fiction\n\x0b\x08\x02\x12\x07History"]


def test_native_grpc_error_is_untouched(native_envoy):
    # FailRequest{code: 5}: a gRPC client gets the gRPC status, not a JSON body.
    r = native_envoy.grpc("/bookstore.v1.Bookstore/Fail", b"\x08\x05")
    assert r.http_status == 200
    assert r.grpc_status == 5
    assert r.grpc_message == "failure requested"
    assert "grpc-status-details-bin" in r.trailers


def test_native_grpc_large_message(native_envoy):
    # Unannotated(Shelf) returns its request: 300 kB each way, past HTTP/2's 64 kB windows.
    theme = b"x" * 300_000
    shelf = b"\x08\x09\x12" + _varint(len(theme)) + theme
    r = native_envoy.grpc("/bookstore.v1.Bookstore/Unannotated", shelf)
    assert r.grpc_status == 0, r.grpc_message
    assert r.messages == [shelf]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)
