"""Messages of several MB, far over Envoy's 1 MiB per-connection buffer limit:
the filter keeps bodies itself, so they transcode both ways when the
configured limits allow them, and the limits answer clear JSON errors."""

import base64
import os

import pytest

from checks import assert_own_error, describe
from harness import with_defaults

ECHO = "/v1/types:echo"
MB = 1 << 20


def vm_hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


@pytest.mark.parametrize("size_mb", [4, 32])
def test_message_of_megabytes_round_trips(envoy_factory, size_mb):
    """A bytes field of 4 and 32 MB (5.3 and 43 MB of JSON) goes to the backend
    and back; Envoy's peak memory is printed (run pytest -s to see it)."""
    wasm = envoy_factory("filter")
    data = os.urandom(size_mb * MB)
    before = vm_hwm_kib(wasm.proc.pid)
    r = wasm.post(ECHO, body={"bytesValue": base64.b64encode(data).decode()}, timeout=120)
    assert r.status_code == 200, describe(r)
    assert base64.b64decode(r.json()["bytesValue"]) == data
    after = vm_hwm_kib(wasm.proc.pid)
    print(f"\n{size_mb} MB message: Envoy (wasm) peak RSS {before // 1024} -> {after // 1024} MiB")


def test_native_needs_a_bigger_buffer_limit_for_4_mb(envoy_factory):
    """The reference on the same request: Envoy's own transcoder buffers under the
    listener's 1 MiB buffer limit and fails it; the filter answers, with the same
    bytes the backend sent."""
    data = os.urandom(4 * MB)
    body = {"bytesValue": base64.b64encode(data).decode()}
    native, wasm = envoy_factory("native"), envoy_factory("filter")
    n, w = native.post(ECHO, body=body, timeout=60), wasm.post(ECHO, body=body, timeout=60)
    # Which of native's buffers overflows first depends on how fast the request reaches
    # the backend: the reply's (500, the usual case) or, on a loaded machine, the
    # request's (413, seen once in CI); both with the same message.
    assert n.status_code in (413, 500) and "buffer size exceeds the configured limit" in n.text, describe(n)
    assert w.status_code == 200 and base64.b64decode(w.json()["bytesValue"]) == data


def test_request_over_max_request_body_size_is_413_json(envoy_factory):
    wasm = envoy_factory("filter", with_defaults(max_request_body_size=2 * MB))
    r = wasm.post(ECHO, body={"bytesValue": base64.b64encode(os.urandom(4 * MB)).decode()}, timeout=60)
    assert_own_error(r, 413, 8, "max_request_body_size (2097152 bytes)")
    assert wasm.post(ECHO, body={"stringValue": "still fine"}).json() == {"stringValue": "still fine"}


def test_response_over_max_response_body_size_is_a_json_error(envoy_factory):
    wasm = envoy_factory("filter", with_defaults(max_request_body_size=16 * MB, max_response_body_size=3 * MB))
    r = wasm.post(ECHO, body={"bytesValue": base64.b64encode(os.urandom(4 * MB)).decode()}, timeout=60)
    assert_own_error(r, 500, 13, "max_response_body_size (3145728 bytes)")
