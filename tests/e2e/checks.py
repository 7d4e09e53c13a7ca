"""Assertions shared by the end-to-end tests.

Differential checks compare one request's answers through Envoy's native
grpc_json_transcoder and through the Wasm filter (a harness.Pair); the other
helpers check an answer of ours exactly where we differ on purpose.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

import requests

from harness import Pair

JSON = "application/json"
GRPC = "application/grpc"

# Headers Envoy itself sets differently on every answer.
VOLATILE_HEADERS = {"date", "x-envoy-upstream-service-time", "x-request-id"}


def content_type(r: requests.Response) -> str | None:
    return r.headers.get("content-type")


def body_value(r: requests.Response) -> Any:
    """The parsed JSON body for JSON answers, else the raw bytes."""
    if (content_type(r) or "").startswith(JSON) and r.content:
        return r.json()
    return r.content


def describe(r: requests.Response) -> str:
    return f"{r.status_code} {content_type(r)} {r.content[:500]!r}"


def assert_same(pair: Pair, *, headers: Iterable[str] = (), exact_text: bool = False) -> requests.Response:
    """Native and wasm gave the same status, content-type, body (parsed JSON,
    or bytes; the exact bytes with exact_text) and the given headers.
    Returns the wasm answer."""
    native, wasm = pair
    where = f"\n  native: {describe(native)}\n  wasm:   {describe(wasm)}"
    assert wasm.status_code == native.status_code, "HTTP status differs" + where
    assert content_type(wasm) == content_type(native), "content-type differs" + where
    if exact_text:
        assert wasm.content == native.content, "body text differs" + where
    else:
        assert body_value(wasm) == body_value(native), "body differs" + where
    for name in headers:
        assert wasm.headers.get(name) == native.headers.get(name), f"header {name} differs" + where
    return wasm


def assert_answer(r: requests.Response, status: int, body: Any, ctype: str = JSON) -> None:
    """One answer is exactly this (JSON body compared parsed)."""
    assert (r.status_code, content_type(r)) == (status, ctype), describe(r)
    assert body_value(r) == body, describe(r)


def assert_own_error(r: requests.Response, http: int, code: int, *needles: str) -> dict:
    """An error the filter made itself: a JSON google.rpc.Status (code, message,
    details only if any) whose message names what was wrong."""
    assert r.status_code == http, describe(r)
    assert content_type(r) == JSON, describe(r)
    status = r.json()
    assert set(status) <= {"code", "message", "details"}, status
    assert status["code"] == code, status
    assert isinstance(status.get("message"), str) and status["message"], status
    for needle in needles:
        assert needle in status["message"], f"{needle!r} not in {status['message']!r}"
    return status


def assert_native_text_error(r: requests.Response, http: int, *needles: str) -> None:
    """An error native Envoy made itself: text/plain (loosely checked)."""
    assert r.status_code == http, describe(r)
    assert (content_type(r) or "").startswith("text/plain"), describe(r)
    for needle in needles:
        assert needle in r.text, f"{needle!r} not in {r.text!r}"


def assert_passed_through(r: requests.Response) -> None:
    """The request reached the backend untranscoded: the backend answered as a
    gRPC server (HTTP 200, application/grpc, a grpc-status header)."""
    assert r.status_code == 200, describe(r)
    assert content_type(r) == GRPC, describe(r)
    assert r.headers.get("grpc-status") not in (None, "0"), dict(r.headers)


def pretty(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)
