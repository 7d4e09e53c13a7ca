#!/usr/bin/env python3
"""End-to-end benchmark of `make bench`: the same Envoy binary with (a) Envoy's
native grpc_json_transcoder, (b) the rust-grpc-proxy Wasm filter and (c) the
same filter as a dynamic module, in front of the same near-free gRPC backend
(src/bench-backend), loaded by the same wrk.

The Envoys run side by side (each idle while another is measured); every case
is run native, wasm, dynmod, native, ... (BENCH_REPEATS times each), after one
warm-up run per flavour, and the table reports the median of the repeats.
Before any timing, each request is sent once to each and the answers must be
the same JSON: a benchmark of failing requests would measure nothing.

Environment (all optional):
  BENCH_SECONDS       seconds per wrk run (default 5)
  BENCH_REPEATS       runs per flavour and case (default 3)
  BENCH_CONCURRENCY   comma-separated wrk connection counts (default 1,16,64)
  BENCH_ENVOY_WORKERS Envoy --concurrency (default 1: with wrk and the backend on 2 cores)
  BENCH_CASES         comma-separated case names to run (default: all)
  BENCH_FLAVOURS      comma-separated flavours (default native,wasm,dynmod; native is required)
  BENCH_OUT           output folder (default build/bench)
Paths: E2E_ENVOY, E2E_WASM (build/rust_grpc_proxy.wasm), E2E_DYNMOD (build/librust_grpc_proxy.so), BENCH_BACKEND
(target/release/bench-backend).

Prints a markdown table; writes BENCH_OUT/e2e.md and BENCH_OUT/e2e.json (every run).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("BENCH_OUT", REPO / "build" / "bench")).resolve()
BACKEND_BIN = Path(os.environ.get("BENCH_BACKEND", REPO / "target" / "release" / "bench-backend")).resolve()
PAYLOADS = REPO / "bench" / "payloads"
WRK_SCRIPT = REPO / "bench" / "wrk" / "report.lua"

SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
CONCURRENCY = [int(c) for c in os.environ.get("BENCH_CONCURRENCY", "1,16,64").split(",") if c.strip()]
WORKERS = int(os.environ.get("BENCH_ENVOY_WORKERS", "1"))
FLAVOURS = [f.strip() for f in os.environ.get("BENCH_FLAVOURS", "native,wasm,dynmod").split(",") if f.strip()]
if "native" not in FLAVOURS:
    FLAVOURS.insert(0, "native")
FILTERS = [f for f in FLAVOURS if f != "native"]

# The harness of tests/e2e starts Envoy and the backend; it reads its paths from
# the environment when imported, so they are set first.
OUT.mkdir(parents=True, exist_ok=True)
os.environ["E2E_DESCRIPTORS"] = str(OUT / "bench-descriptors.pb")
os.environ.setdefault("E2E_ENVOY_LOG_LEVEL", "warning")
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import harness  # noqa: E402
import requests  # noqa: E402

# name, method, path, body file
CASES = [
    ("small GET", "GET", "/v1/small/s-1?name=small%20message&count=42&active=true", None),
    ("small POST", "POST", "/v1/small", PAYLOADS / "small.json"),
    ("order GET", "GET", "/v1/orders/order-000123?customer_id=customer-4567&status=STATUS_PAID&page_size=20"
                         "&fields=items&fields=total", None),
    ("order POST", "POST", "/v1/orders", PAYLOADS / "order.json"),
    # Numbers first (decimal prices, long fractions, int64/uint64, a duration), and a 22 KB page of them.
    ("listing POST", "POST", "/v1/listings", PAYLOADS / "listing.json"),
    ("catalog POST", "POST", "/v1/catalogs", PAYLOADS / "catalog.json"),
]
if os.environ.get("BENCH_CASES"):
    wanted = {c.strip() for c in os.environ["BENCH_CASES"].split(",")}
    CASES = [c for c in CASES if c[0] in wanted]

OPTIONS = {
    "services": ["bench.v1.Bench"],
    "print_options": {"add_whitespace": False, "always_print_primitive_fields": False,
                      "always_print_enums_as_ints": False, "preserve_proto_field_names": False},
    "convert_grpc_status": True,
}

_ACCESS_LOG = re.compile(r"\n( +)access_log:\n(?:\1[ -].*\n)+")


def without_access_log(config: str) -> str:
    """The templates log every request to stdout; the benchmark measures the
    filters, not logging, so both flavours lose that block alike."""
    stripped = _ACCESS_LOG.sub("\n", config, count=1)
    if stripped == config:
        raise RuntimeError("no access_log block found in the rendered config: update bench/e2e.py")
    return stripped


_render = harness.render.render
harness.render.render = lambda *a, **k: without_access_log(_render(*a, **k))


def wrk(url: str, method: str, body: Path | None, connections: int, seconds: int) -> dict:
    env = dict(os.environ, BENCH_METHOD=method, BENCH_BODY_FILE=str(body) if body else "")
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(WRK_SCRIPT), url]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((l for l in run.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if run.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({run.returncode}): {' '.join(cmd)}\n{run.stdout}\n{run.stderr}")
    result = json.loads(line[len("BENCH_JSON "):])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    errors = sum(result[k] for k in ("non2xx", "connect_errors", "read_errors", "write_errors", "timeouts"))
    if errors:
        raise RuntimeError(f"{errors} failed requests in {' '.join(cmd)}: {result}")
    return result


def check_same_answers(envoys: dict) -> None:
    for name, method, path, body in CASES:
        answers = {}
        for flavour, envoy in envoys.items():
            data = body.read_bytes() if body else None
            r = envoy.request(method, path, body=data,
                              headers={"Content-Type": "application/json"} if data else None)
            if r.status_code != 200:
                raise RuntimeError(f"{name}: {flavour} answered {r.status_code}: {r.text[:500]}")
            answers[flavour] = r.json()
        for flavour in FILTERS:
            if answers["native"] != answers[flavour]:
                raise RuntimeError(f"{name}: native and {flavour} answer differently:\n{answers}")
        size = len(json.dumps(answers["native"], separators=(",", ":")))
        print(f"  {name}: {', '.join(envoys)} answer 200 with the same JSON ({size} bytes)", flush=True)


def fmt_ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def main() -> int:
    if not shutil.which("wrk"):
        print("error: wrk not found (apt-get install wrk; `make bench` installs it)", file=sys.stderr)
        return 1
    harness.require(BACKEND_BIN, "bench backend (make bench builds it)")
    subprocess.run([str(BACKEND_BIN), "descriptor-set", os.environ["E2E_DESCRIPTORS"]], check=True)
    work = OUT / "e2e-run"
    backend = harness.ExampleService(work / "backend", binary=BACKEND_BIN).start()
    envoys = {}
    try:
        for flavour in FLAVOURS:
            envoys[flavour] = harness.Envoy(flavour, OPTIONS, backend, work / flavour,
                                            concurrency=WORKERS).start()
        print(f"Envoy {WORKERS} worker(s); wrk 1 thread; {SECONDS}s per run, {REPEATS} runs per flavour, "
              f"concurrency {CONCURRENCY}", flush=True)
        check_same_answers(envoys)
        runs = []
        for name, method, path, body in CASES:
            for connections in CONCURRENCY:
                for flavour, envoy in envoys.items():  # warm-up, not recorded
                    wrk(envoy.base_url + path, method, body, connections, 1)
                for repeat in range(REPEATS):
                    for flavour, envoy in envoys.items():
                        r = wrk(envoy.base_url + path, method, body, connections, SECONDS)
                        r.update(case=name, flavour=flavour, connections=connections, repeat=repeat)
                        runs.append(r)
                        print(f"  {name:10} c={connections:<3} {flavour:6} #{repeat + 1}: {r['rps']:9.0f} req/s  "
                              f"p50 {fmt_ms(r['p50_us'])} ms  p99 {fmt_ms(r['p99_us'])} ms", flush=True)
                for flavour, envoy in envoys.items():
                    if not envoy.alive:
                        raise RuntimeError(f"the {flavour} Envoy died; log {envoy.log_path}")
    finally:
        for envoy in envoys.values():
            envoy.stop()
        backend.stop()

    head = "| case | conns | native req/s |"
    rule = "|---|---:|---:|"
    for f in FILTERS:
        head += f" {f} req/s | {f}/native |"
        rule += "---:|---:|"
    head += " native p99 ms |" + "".join(f" {f} p99 ms | {f} p99 ratio |" for f in FILTERS)
    rule += "---:|" + "---:|---:|" * len(FILTERS)
    rows = [head, rule]
    summary = []
    for name, *_ in CASES:
        for connections in CONCURRENCY:
            med = {}
            for flavour in FLAVOURS:
                mine = [r for r in runs if r["case"] == name and r["flavour"] == flavour and r["connections"] == connections]
                med[flavour] = {k: statistics.median(r[k] for r in mine) for k in ("rps", "p50_us", "p99_us")}
            entry = dict(case=name, connections=connections, **{f"{f}_{k}": v for f in med for k, v in med[f].items()})
            row = f"| {name} | {connections} | {med['native']['rps']:.0f} |"
            for f in FILTERS:
                ratio = med[f]["rps"] / med["native"]["rps"]
                p99_ratio = med[f]["p99_us"] / med["native"]["p99_us"]
                # ratio/p99_ratio: the Wasm build's (what bench/report.py checks); dynmod_*: the module's.
                prefix = "" if f == "wasm" else f"{f}_"
                entry[f"{prefix}ratio"], entry[f"{prefix}p99_ratio"] = ratio, p99_ratio
                row += f" {med[f]['rps']:.0f} | **{ratio:.2f}** |"
            row += f" {fmt_ms(med['native']['p99_us'])} |"
            for f in FILTERS:
                row += f" {fmt_ms(med[f]['p99_us'])} | {med[f]['p99_us'] / med['native']['p99_us']:.2f} |"
            summary.append(entry)
            rows.append(row)
    table = "\n".join(rows)
    header = (f"End to end (median of {REPEATS} alternated runs of {SECONDS}s; Envoy --concurrency {WORKERS}, "
              f"wrk -t1; {os.cpu_count()} CPUs)\n\n")
    (OUT / "e2e.md").write_text(header + table + "\n")
    (OUT / "e2e.json").write_text(json.dumps({"runs": runs, "summary": summary}, indent=1) + "\n")
    print("\n" + header + table, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
