"""Robustness: a barrage of hostile requests through the Wasm Envoy. Every
answer must be a well-formed HTTP response (a JSON google.rpc.Status where the
filter judges the request itself), and afterwards the same Envoy must still
answer correctly, with no Wasm panic, trap or VM failure in its log.
"""

from __future__ import annotations

import json
import socket

import pytest

from checks import JSON, assert_same

ECHO = "/v1/types:echo"
JSON_CT = {"content-type": JSON}

ALL_TYPES_TEXT = json.dumps({
    "doubleValue": 1.5, "int64Value": "-9223372036854775808", "stringValue": "ü😀", "bytesValue": "AAEC/w==",
    "color": "BLUE", "nested": {"name": "n", "child": {"name": "c"}}, "repeatedNested": [{"name": "x"}],
    "stringMap": {"k": "v"}, "int64Map": {"5": {"name": "five"}}, "timestamp": "1972-01-01T10:00:20.021Z",
    "structValue": {"a": [1.5, "two", None]}, "any": {"@type": "type.googleapis.com/bookstore.v1.Shelf", "id": "1"},
})

# (id, method, path, headers, body, expect): expect "own400" = our JSON
# google.rpc.Status with INVALID_ARGUMENT; "ok" = 200; "any" = a well-formed answer.
BARRAGE: list[tuple[str, str, str, dict | None, bytes | None, str]] = [
    # Broken JSON.
    *[(f"invalid JSON {b!r}", "POST", ECHO, JSON_CT, b, "own400") for b in [
        b"{", b'{"stringValue":', b"}", b"[", b"nul", b'{"int32Value":1,}', b'{"int32Value" 1}', b'"\\x"', b"{}}",
        b"\xef\xbb\xbf{}", b"{'a': }", b"\x00" * 64, b"  \n\t ", b'{"stringValue": "\\ud800"}']],
    *[(f"truncated JSON at {n}", "POST", ECHO, JSON_CT, ALL_TYPES_TEXT.encode()[:n], "own400")
      for n in range(7, len(ALL_TYPES_TEXT), len(ALL_TYPES_TEXT) // 9)],
    # Not an object.
    *[(f"JSON {b!r} as body", "POST", ECHO, JSON_CT, b, "own400") for b in [b"[]", b"[1,2]", b'"str"', b"null", b"123", b"true"]],
    # Deep nesting (thousands of levels).
    ("nested messages x5000", "POST", ECHO, JSON_CT, b'{"nested":' + b'{"child":' * 5000 + b"}" * 5001, "own400"),
    ("nested arrays x5000", "POST", ECHO, JSON_CT, b'{"listValue":' + b"[" * 5000 + b"]" * 5000 + b"}", "own400"),
    ("nested structs x3000", "POST", ECHO, JSON_CT, b'{"structValue":' + b'{"a":' * 3000 + b"1" + b"}" * 3001, "own400"),
    ("nested arrays x100000", "POST", ECHO, JSON_CT, b"[" * 100_000, "own400"),
    ("deep body field path", "PUT", "/v1/types/1", JSON_CT, b'{"child":' * 4000 + b"}" * 4000, "own400"),
    # Numbers.
    ("5000-digit integer", "POST", ECHO, JSON_CT, b'{"int64Value": ' + b"9" * 5000 + b"}", "own400"),
    ("1e400", "POST", ECHO, JSON_CT, b'{"doubleValue": 1e400}', "own400"),
    ("1e-400", "POST", ECHO, JSON_CT, b'{"doubleValue": 1e-400}', "ok"),
    ("int32 out of range", "POST", ECHO, JSON_CT, b'{"int32Value": 2147483648}', "own400"),
    ("uint64 negative", "POST", ECHO, JSON_CT, b'{"uint64Value": -1}', "own400"),
    ("int64 2^63", "POST", ECHO, JSON_CT, b'{"int64Value": "9223372036854775808"}', "own400"),
    ("float overflow", "POST", ECHO, JSON_CT, b'{"floatValue": 1e39}', "own400"),
    # Values of the wrong kind.
    ("invalid base64", "POST", ECHO, JSON_CT, b'{"bytesValue": "@@@"}', "own400"),
    ("oneof conflict", "POST", ECHO, JSON_CT, b'{"choiceString": "a", "choiceInt": 1}', "own400"),
    ("oneof conflict with the URL", "POST", ECHO + "?choiceInt=1", JSON_CT, b'{"choiceString": "a"}', "own400"),
    ("duplicate keys", "POST", "/v1/shelves", JSON_CT, b'{"theme": "a", "theme": "b"}', "ok"),
    ("bad timestamp", "POST", ECHO, JSON_CT, b'{"timestamp": "2020-13-45T99:99:99Z"}', "own400"),
    ("bad any", "POST", ECHO, JSON_CT, b'{"any": {"@type": "nope"}}', "own400"),
    ("string for a message", "POST", ECHO, JSON_CT, b'{"nested": "x"}', "own400"),
    ("object for a string", "POST", ECHO, JSON_CT, b'{"stringValue": {}}', "own400"),
    # Invalid UTF-8 and binary garbage.
    ("invalid UTF-8 in a string", "POST", "/v1/shelves", JSON_CT, b'{"theme": "\xff\xfe"}', "own400"),
    ("binary garbage", "POST", "/v1/shelves", JSON_CT, bytes(range(256)) * 8, "own400"),
    ("garbage as gRPC to a REST path", "POST", "/v1/shelves", {"content-type": "application/grpc"}, b"\xff" * 40, "any"),
    ("garbage as gRPC to a gRPC path", "POST", "/bookstore.v1.Bookstore/GetShelf", {"content-type": "application/grpc"},
     b"\x00\x00\x00\x00\x05\xff\xff\xff\xff\xff", "any"),
    # Paths and queries.
    ("% garbage in the path", "GET", "/api/v1/echo/%%%25%2/get?query=%%%", None, None, "own400"),
    ("lone % variable", "GET", "/v1/shelves/%", None, None, "own400"),
    ("%FF in a path variable", "GET", "/api/v1/echo/%FF%FE/get", None, None, "own400"),
    ("%FF in a query name", "GET", "/v1/types/s/n?%FF=1", None, None, "any"),
    ("%FF in a query value", "GET", "/v1/types/s/n?stringValue=%C3%28", None, None, "own400"),
    ("empty query pieces", "GET", "/v1/types/s/n?=&==&&=x", None, None, "ok"),
    ("broken map syntax", "GET", "/v1/types/s/n?stringMap[=x&stringMap[a=b&[]=1", None, None, "any"),
    ("300 repeated values", "GET", "/v1/shelves/1/books?" + "&".join(f"tags={i}" for i in range(300)), None, None, "ok"),
    # The backend refuses such a header block (431): see test_upstream_http_error_on_a_bodiless_request.
    ("2000 repeated values", "GET", "/v1/shelves/1/books?" + "&".join(f"tags={i}" for i in range(2000)), None, None, "any"),
    ("very deep query name", "GET", "/v1/types/s/n?" + "nested." * 300 + "name=x", None, None, "any"),
    ("8000-character path", "GET", "/api/v1/echo/" + "a" * 8000 + "/get", None, None, "ok"),
    ("50000-character path", "GET", "/api/v1/echo/" + "a" * 50_000 + "/get", None, None, "any"),
    ("120000-character path", "GET", "/api/v1/echo/" + "a" * 120_000 + "/get", None, None, "any"),
    ("5000 path segments", "GET", "/v1/archive/" + "a/" * 5000, None, None, "any"),
    # Methods and content types.
    ("unknown method FOO", "FOO", "/v1/shelves", None, None, "any"),
    ("lower-case method", "get", "/v1/shelves", None, None, "any"),
    ("PROPFIND", "PROPFIND", "/v1/shelves/1", None, None, "any"),
    *[(f"content-type {ct}", "POST", "/v1/shelves", {"content-type": ct}, b'{"theme": "x"}', "ok") for ct in [
        "application/xml", "multipart/form-data; boundary=x", "application/grpc-web-text", "text/plain", "", "*/*"]],
    ("empty body on POST body *", "POST", ECHO, JSON_CT, b"", "ok"),
    ("empty body on POST body field", "POST", "/v1/shelves", JSON_CT, b"", "ok"),
    # Sizes.
    ("1 MiB body", "POST", ECHO, JSON_CT, b'{"stringValue": "' + b"a" * (1 << 20) + b'"}', "any"),
    ("900 kB body", "POST", ECHO, JSON_CT, b'{"stringValue": "' + b"a" * 900_000 + b'"}', "any"),
    ("900 kB HttpBody", "PUT", "/v1/shelves/1/books/2/cover", {"content-type": "image/png"}, b"\x89" * 900_000, "any"),
    ("100 kB header", "GET", "/v1/shelves", {"x-big": "b" * 100_000}, None, "any"),
    ("90 headers", "GET", "/v1/metadata", {f"x-h{i}": str(i) for i in range(90)}, None, "ok"),
    ("200 headers (over Envoy's max_headers_count)", "GET", "/v1/metadata", {f"x-h{i}": str(i) for i in range(200)}, None, "any"),
]

# Raw HTTP/1.1 requests the client library would refuse to send.
RAW = [
    ("raw invalid UTF-8 in the path", b"GET /api/v1/echo/\xff\xfe/get?query=\xff HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("raw control characters in the path", b"GET /api/v1/echo/a\x01b/get HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("HTTP/1.0 without Host", b"GET /v1/shelves HTTP/1.0\r\n\r\n"),
    ("content-length and chunked", b"POST /v1/shelves HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                                   b"Transfer-Encoding: chunked\r\ncontent-type: application/json\r\n\r\n0\r\n\r\n"),
    ("bad chunk size", b"POST /v1/shelves HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
    ("body shorter than content-length", b"POST /v1/shelves HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                                         b"content-type: application/json\r\n\r\n{\"theme\""),
    ("header without a colon", b"GET /v1/shelves HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n"),
]


def raw_request(port: int, data: bytes, timeout: float = 3.0) -> bytes:
    """Sends raw bytes, half-closes, and reads what comes back until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        return out


def _problem(name: str, r, expect: str) -> str | None:
    """Why an answer is not acceptable (None if it is)."""
    if not 100 <= r.status_code <= 599:
        return f"{name}: status {r.status_code}"
    ctype = r.headers.get("content-type") or ""
    if ctype.startswith(JSON) and r.content:
        try:
            body = r.json()
        except ValueError:
            return f"{name}: content-type JSON but the body is not JSON: {r.content[:200]!r}"
        if r.status_code >= 400 and isinstance(body, dict) and "code" in body:
            if not set(body) <= {"code", "message", "details"} or not isinstance(body["code"], int):
                return f"{name}: not a google.rpc.Status: {body}"
    if expect == "own400":
        if r.status_code != 400 or ctype != JSON or r.json().get("code") != 3 or not r.json().get("message"):
            return f"{name}: expected our 400 INVALID_ARGUMENT JSON, got {r.status_code} {ctype} {r.content[:300]!r}"
    if expect == "ok" and r.status_code != 200:
        return f"{name}: expected 200, got {r.status_code} {r.content[:300]!r}"
    return None


def test_hostile_requests_then_the_envoy_still_works(wasm_envoy):
    envoy = wasm_envoy
    mark = envoy.log_size()
    problems = []

    def generator_body():  # a JSON body in many tiny chunks
        text = b'{"theme": "' + b"c" * 3000 + b'"}'
        for i in range(0, len(text), 7):
            yield text[i:i + 7]

    requests_sent = 0
    for name, method, path, headers, body, expect in BARRAGE:
        try:
            r = envoy.request(method, path, headers=headers, body=body, timeout=20)
        except Exception as exc:  # noqa: BLE001 - any client-side failure is a finding
            problems.append(f"{name}: no HTTP answer ({type(exc).__name__}: {exc})")
            continue
        requests_sent += 1
        if (p := _problem(name, r, expect)) is not None:
            problems.append(p)
    r = envoy.request("POST", "/v1/shelves", headers=JSON_CT, body=generator_body())
    if (p := _problem("chunked body", r, "ok")) is not None:
        problems.append(p)
    for name, data in RAW:
        answer = raw_request(envoy.listen_port, data)
        if answer and not answer.startswith(b"HTTP/1."):
            problems.append(f"{name}: not an HTTP answer: {answer[:100]!r}")
    assert not problems, f"{len(problems)} bad answers out of {requests_sent}:\n" + "\n".join(problems)

    # The same Envoy (same worker VMs) still answers, with and without a body.
    assert envoy.alive
    r = envoy.get("/v1/shelves")
    assert (r.status_code, r.json()) == (200, {"shelves": [{"id": "1", "theme": "Fiction"}, {"id": "2", "theme": "History"}]})
    for _ in range(4):  # reach both workers
        r = envoy.post("/v1/shelves", body={"theme": "after"})
        assert (r.status_code, r.json()) == (200, {"id": "3", "theme": "after"})
        r = envoy.get("/v1/fail/5")
        assert r.status_code == 404 and r.json()["code"] == 5
    envoy.assert_no_wasm_failures(since=mark)


@pytest.mark.parametrize("size", [900_000])
def test_large_body_below_the_buffer_limit_like_native(both, size):
    body = b'{"stringValue": "' + b"a" * size + b'"}'
    r = assert_same(both(None, "POST", ECHO, body=body, headers=JSON_CT))
    assert r.status_code == 200 and len(r.json()["stringValue"]) == size


def test_body_over_one_mebibyte_like_native(both):
    """Over Envoy's per-connection buffer limit (1 MiB): the filter keeps the
    body itself, so only max_request_body_size limits it, as for native."""
    body = {"bytesValue": "QUFB" * (1 << 18)}  # 1 MiB of base64
    native, wasm = both(None, "POST", ECHO, body=body)
    assert native.status_code == 200
    assert wasm.status_code == 200
