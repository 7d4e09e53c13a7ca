"""Hostile clients, end to end through the Wasm Envoy (test_robustness.py has the
first barrage; these are the cases it lacks): nesting tens of thousands deep,
huge numbers, invalid UTF-8 in every place, duplicate keys, NUL bytes,
overlong path segments, broken percent-escapes, thousands of query
parameters, bodies over the limits, slow bodies and requests aborted half way.

A client's mistake must never get a 5xx: the filter answers it with a JSON
google.rpc.Status (400, or 413 for a body over max_request_body_size), and the
Envoy and its Wasm VMs (one per worker) keep serving afterwards.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from checks import JSON, assert_own_error, describe
from harness import with_defaults

ECHO = "/v1/types:echo"
JSON_CT = {"content-type": JSON}

# Expectations: "own400" our 400 INVALID_ARGUMENT google.rpc.Status naming the
# problem; "ok" 200; "client" anything but a 5xx (200 if the request is fine after
# all, a 4xx when refused; a JSON body, if any, must be a well-formed status);
# "backend431" a path so long that the backend refuses the call's headers (HTTP 431):
# with a body the client gets that 431 as JSON; without one Envoy's gRPC client
# reports only UNKNOWN, so it is a JSON 500 (the known limit of
# test_responses_and_errors.py::test_upstream_http_error_on_a_bodiless_request).
CASES: list[tuple[str, str, str, dict | None, bytes | None, str]] = [
    # Nesting tens of thousands of levels deep.
    ("messages x50000", "POST", ECHO, JSON_CT, b'{"nested":' + b'{"child":' * 50_000 + b"}" * 50_001, "own400"),
    ("Struct x30000", "POST", ECHO, JSON_CT, b'{"structValue":' + b'{"a":' * 30_000 + b"1" + b"}" * 30_001, "own400"),
    ("ListValue x30000", "POST", ECHO, JSON_CT, b'{"listValue":' + b"[" * 30_000 + b"]" * 30_000 + b"}", "own400"),
    ("Value objects in arrays x20000", "POST", ECHO, JSON_CT,
     b'{"value":' + b'[{"a":' * 20_000 + b"0" + b"}]" * 20_000 + b"}", "own400"),
    ("unknown field nested x50000", "POST", ECHO, JSON_CT, b'{"notAField":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
     "client"),
    ("unclosed x60000", "POST", ECHO, JSON_CT, b'{"nested":' + b'{"child":' * 60_000, "own400"),
    # Huge numbers.
    ("100000-digit int32", "POST", ECHO, JSON_CT, b'{"int32Value": ' + b"7" * 100_000 + b"}", "own400"),
    ("100000-digit int64 string", "POST", ECHO, JSON_CT, b'{"int64Value": "' + b"7" * 100_000 + b'"}', "own400"),
    ("exponent 1e99999999999999999999", "POST", ECHO, JSON_CT, b'{"doubleValue": 1e99999999999999999999}', "own400"),
    ("int64 as 9e9999 string", "POST", ECHO, JSON_CT, b'{"int64Value": "9e9999"}', "own400"),
    ("10000-digit fraction", "POST", ECHO, JSON_CT, b'{"doubleValue": 0.' + b"0" * 10_000 + b"1}", "ok"),
    ("uint64 1.5", "POST", ECHO, JSON_CT, b'{"uint64Value": 1.5}', "own400"),
    ("int32 NaN string", "POST", ECHO, JSON_CT, b'{"int32Value": "NaN"}', "own400"),
    ("float NaN string", "POST", ECHO, JSON_CT, b'{"floatValue": "NaN", "doubleValue": "-Infinity"}', "ok"),
    ("duration 10^20 s", "POST", ECHO, JSON_CT, b'{"duration": "100000000000000000000s"}', "own400"),
    ("timestamp year 99999", "POST", ECHO, JSON_CT, b'{"timestamp": "99999-01-01T00:00:00Z"}', "own400"),
    ("100000-digit path int64", "GET", "/v1/shelves/" + "9" * 20_000, None, None, "own400"),
    # Invalid UTF-8 in every place a body can carry it.
    ("overlong UTF-8 in a string", "POST", ECHO, JSON_CT, b'{"stringValue": "\xc0\xaf"}', "own400"),
    ("UTF-8 surrogate in a string", "POST", ECHO, JSON_CT, b'{"stringValue": "\xed\xa0\x80"}', "own400"),
    ("truncated UTF-8 at the end", "POST", ECHO, JSON_CT, b'{"stringValue": "\xe2\x82', "own400"),
    ("invalid UTF-8 in a key", "POST", ECHO, JSON_CT, b'{"string\xffValue": "a"}', "own400"),
    ("invalid UTF-8 in a map key", "POST", ECHO, JSON_CT, b'{"stringMap": {"\xfe": "a"}}', "own400"),
    ("invalid UTF-8 in an unknown field", "POST", ECHO, JSON_CT, b'{"zzz": "\xff"}', "own400"),
    ("invalid UTF-8 in a Struct", "POST", ECHO, JSON_CT, b'{"structValue": {"a": "\x80"}}', "own400"),
    ("lone low surrogate escape", "POST", ECHO, JSON_CT, b'{"stringValue": "\\udc00"}', "own400"),
    # Percent-escapes that are broken or decode to invalid UTF-8 (path variables and query values).
    *[(f"path variable {esc}", "GET", f"/api/v1/echo/a{esc}b/get", None, None, "own400")
      for esc in ["%C3", "%ED%A0%80", "%C0%AF", "%F4%90%80%80", "%E2%82"]],
    *[(f"path variable {esc} kept literally", "GET", f"/api/v1/echo/a{esc}/get", None, None, "ok")
      for esc in ["%G0", "%u0041", "%0"]],
    *[(f"query value {esc}", "GET", f"/api/v1/echo/a/get?query={esc}", None, None, "own400")
      for esc in ["%C3", "%ED%A0%80", "%C0%AF", "%FF%FF"]],
    ("map key %FF in the query", "POST", ECHO + "?stringMap[%FF]=x", JSON_CT, b"{}", "client"),
    ("map value %C3 in the query", "POST", ECHO + "?stringMap[a]=%C3", JSON_CT, b"{}", "own400"),
    # Duplicate keys.
    ("JSON name and proto name", "POST", ECHO, JSON_CT, b'{"stringValue": "a", "string_value": "b"}', "client"),
    ("duplicate map keys", "POST", ECHO, JSON_CT, b'{"stringMap": {"a": "1", "a": "2"}}', "client"),
    ("duplicate message keys", "POST", ECHO, JSON_CT, b'{"nested": {"name": "a"}, "nested": {"count": 1}}', "client"),
    ("duplicate keys of different kinds", "POST", ECHO, JSON_CT, b'{"int32Value": 1, "int32Value": "x"}', "client"),
    ("10000 duplicate keys", "POST", ECHO, JSON_CT,
     b"{" + b",".join(b'"int32Value": %d' % i for i in range(10_000)) + b"}", "client"),
    ("duplicate oneof member", "POST", ECHO, JSON_CT, b'{"choiceInt": 1, "choiceInt": 2}', "client"),
    # NUL bytes.
    ("raw NUL in a string", "POST", ECHO, JSON_CT, b'{"stringValue": "a\x00b"}', "own400"),
    ("NUL after the JSON", "POST", ECHO, JSON_CT, b'{}\x00', "own400"),
    ("NUL before the JSON", "POST", ECHO, JSON_CT, b'\x00{}', "own400"),
    ("%00 in a path variable", "GET", "/api/v1/echo/a%00b/get", None, None, "client"),
    ("%00 in a query name", "GET", "/api/v1/echo/a/get?que%00ry=1", None, None, "client"),
    ("%00 in a query value", "GET", "/api/v1/echo/a/get?query=%00", None, None, "client"),
    # Overlong segments and paths.
    ("40000-character path variable", "GET", "/api/v1/echo/" + "z" * 40_000 + "/get", None, None, "backend431"),
    ("40000-character path variable with a body", "POST", "/api/v1/echo/" + "z" * 40_000 + "/post", JSON_CT, b"{}",
     "client"),
    ("10000 %2F in a ** variable", "GET", "/v1/archive/" + "%2F" * 10_000, None, None, "backend431"),
    ("5000 empty segments", "GET", "/v1/shelves" + "/" * 5_000, None, None, "client"),
    ("20000-byte custom verb", "POST", "/v1/shelves/1/books/2:" + "v" * 20_000, JSON_CT, b"{}", "client"),
    # Thousands of query parameters.
    ("600 map entries from the query", "POST", ECHO + "?" + "&".join(f"stringMap[k{i}]={i}" for i in range(600)),
     JSON_CT, b"{}", "ok"),
    ("4000 values for a singular field", "POST", ECHO + "?" + "&".join(f"int32Value={i}" for i in range(4000)),
     JSON_CT, b"{}", "client"),
    ("5000 unknown parameters", "POST", ECHO + "?" + "&".join(f"u{i}=1" for i in range(5000)), JSON_CT, b"{}",
     "client"),
    ("5000 empty parameters", "POST", ECHO + "?" + "&" * 5_000, JSON_CT, b"{}", "ok"),
    ("3000 deep names", "POST", ECHO + "?" + "&".join("nested.child.child.name=x" for _ in range(1500)), JSON_CT, b"{}",
     "client"),
]


def _problem(name: str, r, expect: str) -> str | None:
    """Why an answer to a hostile request is not acceptable (None if it is)."""
    ctype = r.headers.get("content-type") or ""
    body = None
    if ctype.startswith(JSON) and r.content:
        try:
            body = r.json()
        except ValueError:
            return f"{name}: JSON content-type but not JSON: {describe(r)}"
    if r.status_code >= 400 and isinstance(body, dict):
        if not set(body) <= {"code", "message", "details"} or not isinstance(body.get("code"), int) \
                or not body.get("message"):
            return f"{name}: error body is not a google.rpc.Status: {describe(r)}"
    if expect == "backend431":
        if r.status_code not in (431, 500) or body is None:
            return f"{name}: expected a JSON 431 or 500: {describe(r)}"
        return None
    if r.status_code >= 500:
        return f"{name}: a client mistake answered with a 5xx: {describe(r)}"
    if expect == "own400" and (r.status_code != 400 or ctype != JSON or (body or {}).get("code") != 3):
        return f"{name}: expected our 400 INVALID_ARGUMENT JSON: {describe(r)}"
    if expect == "ok" and r.status_code != 200:
        return f"{name}: expected 200: {describe(r)}"
    return None


def _still_serves(envoy, mark: int) -> None:
    """Both workers' VMs answer (a few requests with and without a body), no Wasm failure logged."""
    assert envoy.alive
    for _ in range(4):
        r = envoy.post(ECHO, body={"stringValue": "after"})
        assert (r.status_code, r.json()) == (200, {"stringValue": "after"}), describe(r)
        r = envoy.get("/api/v1/echo/after/get")
        assert r.status_code == 200 and "request=after" in r.json()["response"], describe(r)
    envoy.assert_no_wasm_failures(since=mark)


def test_hostile_bodies_paths_and_queries(wasm_envoy):
    envoy = wasm_envoy
    mark = envoy.log_size()
    problems = []
    for name, method, path, headers, body, expect in CASES:
        try:
            r = envoy.request(method, path, headers=headers, body=body, timeout=30)
        except Exception as exc:  # noqa: BLE001 - no answer at all is a finding
            problems.append(f"{name}: no HTTP answer ({type(exc).__name__}: {exc})")
            continue
        if (p := _problem(name, r, expect)) is not None:
            problems.append(p)
    assert not problems, f"{len(problems)} bad answers out of {len(CASES)}:\n" + "\n".join(problems)
    _still_serves(envoy, mark)


def test_nul_and_duplicate_values_arrive_as_sent(wasm_envoy):
    """What is accepted is transcoded faithfully: an escaped NUL stays in the string, the
    last of duplicate keys wins (as protobuf's own JSON parser does), and 600 map
    entries from the query all arrive (more make a header block the backend refuses,
    as the filter passes the original path on in x-envoy-original-path, like native)."""
    r = wasm_envoy.post(ECHO, body={"stringValue": "a\u0000b"})
    assert (r.status_code, r.json()) == (200, {"stringValue": "a\u0000b"}), describe(r)
    r = wasm_envoy.request("POST", ECHO, headers=JSON_CT, body=b'{"stringMap": {"a": "1", "a": "2"}}')
    assert (r.status_code, r.json()) == (200, {"stringMap": {"a": "2"}}), describe(r)
    path = ECHO + "?" + "&".join(f"stringMap[k{i}]={i}" for i in range(600))
    r = wasm_envoy.request("POST", path, headers=JSON_CT, body=b"{}")
    assert r.status_code == 200 and r.json()["stringMap"] == {f"k{i}": str(i) for i in range(600)}, describe(r)


@pytest.mark.parametrize("size", [1001, 200_000])
def test_body_over_max_request_body_size(envoy_factory, size):
    """Over the configured limit: 413 with a JSON status naming the limit, whether the body
    arrives at once or in many small chunks, on a JSON body and on an HttpBody upload."""
    envoy = envoy_factory("filter", with_defaults(max_request_body_size=1000))
    mark = envoy.log_size()
    body = b'{"stringValue": "' + b"a" * (size - 19) + b'"}'

    def chunks():
        for i in range(0, len(body), 512):
            yield body[i:i + 512]

    expected = {"code": 8, "message": "the request body is larger than max_request_body_size (1000 bytes)"}
    for sent in (body, chunks()):
        r = envoy.request("POST", ECHO, headers=JSON_CT, body=sent)
        assert (r.status_code, r.headers.get("content-type"), r.json()) == (413, JSON, expected), describe(r)
    r = envoy.request("PUT", "/v1/shelves/1/books/2/cover", headers={"content-type": "image/png"}, body=b"\x89" * size)
    assert (r.status_code, r.json()) == (413, expected), describe(r)
    r = envoy.post(ECHO, body={"stringValue": "small"})
    assert (r.status_code, r.json()) == (200, {"stringValue": "small"})
    envoy.assert_no_wasm_failures(since=mark)


def test_body_over_max_request_body_size_is_a_client_error(envoy_factory):
    """A 3 MB body (over Envoy's 1 MiB buffer limit, which the filter does not
    use) past max_request_body_size: 413 with a JSON status, never a 5xx, and
    the VM lives on."""
    wasm = envoy_factory("filter", with_defaults(max_request_body_size=1 << 20))
    mark = wasm.log_size()
    r = wasm.request("POST", ECHO, headers=JSON_CT, body=b'{"stringValue": "' + b"a" * 3_000_000 + b'"}')
    assert_own_error(r, 413, 8, "max_request_body_size")
    _still_serves(wasm, mark)


# ----------------------------------------------------------------- raw connections

def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_response(sock: socket.socket) -> bytes:
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def _post_head(path: str, length: int | None, ctype: str = JSON) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n{framing}\r\n"
            f"Connection: close\r\n\r\n").encode()


def test_slow_body_is_transcoded(wasm_envoy):
    """A body that trickles in (12 pieces, 0.15 s apart) is read whole and transcoded."""
    body = json.dumps({"stringValue": "slow " * 40, "int32Value": 7}).encode()
    with _connect(wasm_envoy.listen_port) as sock:
        sock.sendall(_post_head(ECHO, len(body)))
        step = len(body) // 12 + 1
        for i in range(0, len(body), step):
            time.sleep(0.15)
            sock.sendall(body[i:i + step])
        answer = _read_response(sock)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:300]
    assert json.loads(payload) == {"stringValue": "slow " * 40, "int32Value": 7}


def test_requests_aborted_half_way(wasm_envoy):
    """Clients that vanish: in the middle of a body (with a length, and chunked), while a
    transcoded call is at the backend (router path), and while the filter's own gRPC call
    for a bodiless request is outstanding (its answer then has nobody to go to).
    Afterwards every worker still answers and no Wasm failure was logged."""
    envoy = wasm_envoy
    mark = envoy.log_size()
    port = envoy.listen_port
    slow_stream = json.dumps({"count": 3, "delayMs": 700}).encode()

    def abort(data: bytes, wait: float = 0.0) -> None:
        with _connect(port) as sock:
            sock.sendall(data)
            time.sleep(wait)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST

    threads = []
    for _ in range(6):
        jobs = [
            (_post_head(ECHO, 1000) + b'{"stringValue": "half', 0.05),
            (_post_head(ECHO, None) + b'20\r\n{"stringValue": "chunk chunk chu\r\n', 0.05),
            (_post_head("/v1/shelves/1/books:stream", len(slow_stream)) + slow_stream, 0.3),
            (b"GET /v1/shelves/1/books:stream?count=3&delayMs=700 HTTP/1.1\r\nHost: x\r\n\r\n", 0.3),
            (b"GET /api/v1/echo/x/get HTTP/1.1\r\nHost: x\r\n\r\n", 0.0),
        ]
        for data, wait in jobs:
            t = threading.Thread(target=abort, args=(data, wait))
            t.start()
            threads.append(t)
    for t in threads:
        t.join(30)
    time.sleep(1.6)  # the backend's slow answers arrive for requests nobody waits for
    _still_serves(envoy, mark)
    # The aborted requests were seen, and none of them crashed a VM.
    log = envoy.log_text(mark)
    assert log.count("access: ") >= 30, log[-3000:]
