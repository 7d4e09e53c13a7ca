"""Weighted routing between two versions of a service (canary) observed over a bounded
number of calls, and active health checking of the upstreams."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from conftest import CANARY_WEIGHT
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
