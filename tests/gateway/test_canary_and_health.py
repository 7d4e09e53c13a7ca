"""Weighted routing between two versions of a service (canary) observed over a bounded
number of calls, and active health checking of the upstreams."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from conftest import CANARY_WEIGHT
import gateway
from gateway import wait_until

CALLS = 400


def within(count: int, n: int, p: float) -> bool:
    """count is within 5 standard deviations of a binomial(n, p)'s mean (fails by chance
    with probability below 1e-6)."""
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return abs(count - mean) <= 5 * sd


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_canary_gets_its_weight(plain_gw, method):
    seen = Counter()
    for i in range(CALLS):
        if method == "POST":
            status, body = plain_gw.json("POST", "/greeter/v1/hello", {"name": f"n{i}"})
        else:
            status, body = plain_gw.json("GET", f"/greeter/v1/greetings/n{i}")
        assert status == 200, body
        seen[body["version"]] += 1
    assert set(seen) == {"v1", "v2"}, seen
    assert within(seen["v2"], CALLS, CANARY_WEIGHT / 100), (
        f"{seen['v2']} of {CALLS} calls reached the canary; its weight is {CANARY_WEIGHT} %")


def test_upstreams_are_health_checked(plain_gw):
    # Every backend that runs is seen healthy by active checks ...
    for cluster in ("bookstore", "greeter", "greeter-canary", "chat"):
        wait_until(lambda: all(h.get("eds_health_status") == "HEALTHY" and not h.get("failed_active_health_check")
                               for h in plain_gw.host_health(cluster)), 10, f"{cluster} healthy")
    # ... and the one nobody listens on is marked failed by them, so Envoy answers
    # "no healthy upstream" (UH) instead of trying to connect.
    wait_until(lambda: all(h.get("failed_active_health_check") for h in plain_gw.host_health("ghost")),
               10, "ghost marked unhealthy")
    assert plain_gw.stat("cluster.ghost.health_check.failure") >= 1
    status, _, data = plain_gw.request("GET", "/ghost/x")
    assert status == 503 and b"no healthy upstream" in data, (status, data)


def _healthy(gw, cluster) -> bool:
    return all(h.get("eds_health_status") == "HEALTHY" and not h.get("failed_active_health_check")
               for h in gw.host_health(cluster))


def test_a_backend_that_stops_is_taken_out_and_back_in(plain_gw, flappy_backend, out_dir):
    wait_until(lambda: _healthy(plain_gw, "flappy"), 10, "flappy healthy")
    # The backend answers (426: a WebSocket server wants an upgrade).
    wait_until(lambda: plain_gw.request("GET", "/flappy/x")[0] == 426, 5, "traffic reaches flappy")
    port = flappy_backend.port
    flappy_backend.stop()
    wait_until(lambda: not _healthy(plain_gw, "flappy"), 10, "flappy marked unhealthy after it stopped")
    # The workers get the new health a moment after the admin API shows it.
    status, _, data = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(plain_gw.request("GET", "/flappy/x")),
                                 5, "503 once flappy is unhealthy")
    assert b"no healthy upstream" in data, (status, data)
    # Back on the same port: the checks let traffic in again.
    flappy_backend.cmd = gateway.ws_echo(flappy_backend.workdir, port).cmd
    flappy_backend.start()
    wait_until(lambda: _healthy(plain_gw, "flappy"), 10, "flappy healthy again")
    wait_until(lambda: plain_gw.request("GET", "/flappy/x")[0] == 426, 5, "traffic reaches flappy again")
