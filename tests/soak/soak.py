"""Load and soak run (`make soak`): the example service and an Envoy with the
Wasm filter on free ports of 127.0.0.1, then a bounded load of mixed requests.

Phases: a short run at each concurrency level (SOAK_LEVELS, default 1 4 16 64
client threads), then the steady soak at SOAK_CONCURRENCY threads for the rest
of SOAK_SECONDS. Every answer is checked against what that request must get
(200 with the right body, the 404 of a NOT_FOUND, the 400 of bad JSON), so an
"unexpected" error is any other status, body or client-side failure.

Printed: per phase the requests, rate, latency percentiles and unexpected
errors; Envoy's RSS (VmRSS of its process) after warm-up, at the end and its
peak; Envoy's own counters (5xx, resets). Exit status 1 if any answer was
unexpected, a Wasm failure was logged, or RSS grew by more than
SOAK_MAX_RSS_GROWTH_MB (default 64) from the steady phase's start to its end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import harness  # noqa: E402

SHELVES = {"shelves": [{"id": "1", "theme": "Fiction"}, {"id": "2", "theme": "History"}]}


def _mix():
    """(name, method, path, body, expected status, check(body) -> bool) of the load."""
    types = {"int64Value": "-42", "stringValue": "soak ü", "nested": {"name": "n", "count": 3},
             "stringMap": {"a": "b"}, "repeatedInt32": [1, 2, 3], "timestamp": "2024-02-29T12:00:00Z"}
    return [
        ("echo GET", "GET", "/api/v1/echo/soak/get?query=7", None, 200,
         lambda b: b == {"response": "GET md-hello= request=soak query=7"}),
        ("types POST", "POST", "/v1/types:echo", json.dumps(types).encode(), 200, lambda b: b == types),
        ("shelves GET", "GET", "/v1/shelves", None, 200, lambda b: b == SHELVES),
        ("not found", "GET", "/v1/fail/5", None, 404, lambda b: b.get("code") == 5),
        ("bad JSON", "POST", "/v1/types:echo", b'{"int32Value": "x"', 400, lambda b: b.get("code") == 3),
        ("stream", "GET", "/v1/shelves/1/books:stream?count=5", None, 200,
         lambda b: isinstance(b, list) and len(b) == 5),
        ("echo POST", "POST", "/api/v1/echo/p/post", b'{"query": "12"}', 200,
         lambda b: b == {"response": "POST md-hello= request=p query=12"}),
    ]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.unexpected: Counter[str] = Counter()
        self.examples: list[str] = []
        self.count = 0

    def record(self, latency: float, problem: str | None):
        with self.lock:
            self.count += 1
            self.latencies.append(latency)
            if problem:
                self.unexpected[problem.split(":")[0]] += 1
                if len(self.examples) < 10:
                    self.examples.append(problem)


def _worker(base: str, mix, stop_at: float, stats: Stats, index: int):
    session = requests.Session()
    i = index
    while time.monotonic() < stop_at:
        name, method, path, body, status, check = mix[i % len(mix)]
        i += 1
        if i % 50 == 0:  # some fresh connections too, not only keep-alive
            session.close()
            session = requests.Session()
        headers = {"content-type": "application/json"} if body is not None else {}
        started = time.monotonic()
        problem = None
        try:
            r = session.request(method, base + path, data=body, headers=headers, timeout=30)
            if r.status_code != status:
                problem = f"{name}: status {r.status_code} {r.content[:200]!r}"
            elif not check(r.json()):
                problem = f"{name}: body {r.content[:200]!r}"
        except Exception as exc:  # noqa: BLE001 - every failure counts
            problem = f"{name}: {type(exc).__name__} {exc}"
        stats.record(time.monotonic() - started, problem)
    session.close()


def run_phase(base: str, threads: int, seconds: float) -> tuple[Stats, float]:
    stats = Stats()
    mix = _mix()
    stop_at = time.monotonic() + seconds
    started = time.monotonic()
    workers = [threading.Thread(target=_worker, args=(base, mix, stop_at, stats, n), daemon=True)
               for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(seconds + 60)
    return stats, time.monotonic() - started


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def report(label: str, stats: Stats, elapsed: float) -> None:
    lat = stats.latencies
    print(f"{label:<22} requests={stats.count:<7} rate={stats.count / max(elapsed, 1e-9):7.0f}/s "
          f"p50={percentile(lat, 50) * 1000:6.1f}ms p99={percentile(lat, 99) * 1000:6.1f}ms "
          f"max={max(lat, default=0) * 1000:7.1f}ms unexpected={sum(stats.unexpected.values())}", flush=True)
    for example in stats.examples[:5]:
        print(f"    {example}")


def envoy_counters(envoy) -> dict[str, int]:
    wanted = ("http.transcoder.downstream_rq_5xx", "http.transcoder.downstream_rq_4xx",
              "http.transcoder.downstream_rq_2xx", "cluster.grpc_backend.upstream_rq_pending_failure_eject",
              "cluster.grpc_backend.upstream_cx_destroy_remote_with_active_rq", "http.transcoder.downstream_rq_rx_reset",
              "http.transcoder.downstream_rq_tx_reset")
    out = {}
    for line in envoy.admin("/stats").text.splitlines():
        name, _, value = line.partition(": ")
        if name in wanted:
            out[name] = int(value)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("SOAK_CONCURRENCY", 8)))
    parser.add_argument("--levels", default=os.environ.get("SOAK_LEVELS", "1 4 16 64"))
    parser.add_argument("--max-rss-growth-mb", type=float, default=float(os.environ.get("SOAK_MAX_RSS_GROWTH_MB", 64)))
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split()]
    # A fifth of the time for the levels, the rest for the steady soak.
    level_seconds = max(2.0, args.seconds * 0.2 / max(len(levels), 1)) if levels else 0
    steady_seconds = max(5.0, args.seconds - level_seconds * len(levels))

    out = harness.REPO / "build" / "soak"
    out.mkdir(parents=True, exist_ok=True)
    backend = harness.ExampleService(out / "example-service").start()
    envoy = harness.Envoy("wasm", None, backend, out / "envoy").start()
    try:
        pid = envoy.proc.pid
        print(f"soak: Envoy {envoy.base_url} (pid {pid}, {harness.ENVOY_CONCURRENCY} workers, log {envoy.log_path}); "
              f"levels {levels} x {level_seconds:.0f}s, then {args.concurrency} threads for {steady_seconds:.0f}s",
              flush=True)
        warm, elapsed = run_phase(envoy.base_url, 2, 3)
        report("warm-up (2 threads)", warm, elapsed)
        rss_boot = rss_kb(pid)
        total_unexpected = sum(warm.unexpected.values())
        total_requests = warm.count
        for level in levels:
            stats, elapsed = run_phase(envoy.base_url, level, level_seconds)
            report(f"concurrency {level}", stats, elapsed)
            total_unexpected += sum(stats.unexpected.values())
            total_requests += stats.count
        rss_start = rss_kb(pid)
        peak = rss_start
        samples = []
        stop_sampling = threading.Event()

        def sample():
            nonlocal peak
            while not stop_sampling.wait(5):
                value = rss_kb(pid)
                peak = max(peak, value)
                samples.append(value)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stats, elapsed = run_phase(envoy.base_url, args.concurrency, steady_seconds)
        stop_sampling.set()
        sampler.join(10)
        rss_end = rss_kb(pid)
        peak = max(peak, rss_end)
        report(f"steady ({args.concurrency} threads)", stats, elapsed)
        total_unexpected += sum(stats.unexpected.values())
        total_requests += stats.count
        failures = envoy.wasm_failures()
        counters = envoy_counters(envoy)
        growth_mb = (rss_end - rss_start) / 1024
        print(f"Envoy RSS: after warm-up {rss_boot / 1024:.1f} MB, steady start {rss_start / 1024:.1f} MB, "
              f"end {rss_end / 1024:.1f} MB (growth {growth_mb:+.1f} MB), peak {peak / 1024:.1f} MB")
        if samples:
            print("Envoy RSS every 5 s (MB): " + " ".join(f"{s / 1024:.0f}" for s in samples[::max(1, len(samples) // 24)]))
        print("Envoy counters: " + ", ".join(f"{k.split('.', 1)[1]}={v}" for k, v in sorted(counters.items())))
        print(f"total: {total_requests} requests, {total_unexpected} unexpected, {len(failures)} Wasm failure lines")
        ok = total_unexpected == 0 and not failures and growth_mb <= args.max_rss_growth_mb
        print("soak: " + ("PASS" if ok else "FAIL"))
        return 0 if ok else 1
    finally:
        envoy.stop()
        backend.stop()


if __name__ == "__main__":
    sys.exit(main())
