#!/usr/bin/env python3
"""What one proxy-wasm host call costs Envoy, by kind: native's transcoder behind the
no-op Wasm filter (bench/noop-filter), which makes one kind of call N times per
request ("<call> <n>" mode), against the same filter making none. The difference
in Envoy's CPU time per request (utime + stime of the Envoy process around each wrk
run, /proc/<pid>/stat), divided by N, prices the call. Runs are alternated, and the
median of the repeats is reported. The io-toll row of bench/e2e.py is these calls,
as many as the transcoder makes.

Environment (all optional): HOST_CALLS_N (default 20), BENCH_SECONDS (3),
BENCH_REPEATS (3), BENCH_CONCURRENCY (16, one value), BENCH_OUT (build/bench),
and bench/e2e.py's paths. Prints a markdown table; writes BENCH_OUT/host_calls.md.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e  # noqa: E402  (sets the harness's paths)

CALLS = ["get_map", "set_map", "get_value", "set_value", "get_body", "set_body", "metric"]
N = int(os.environ.get("HOST_CALLS_N", "20"))
CONNECTIONS = e2e.CONCURRENCY[0] if "BENCH_CONCURRENCY" in os.environ else 16
CASE = "small POST"  # has a body, so the body calls have something to read


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    e2e.harness.require(e2e.BACKEND_BIN, "bench backend (make bench builds it)")
    e2e.harness.require(e2e.NOOP_WASM, "no-op Wasm filter (make bench builds it)")
    subprocess.run([str(e2e.BACKEND_BIN), "descriptor-set", os.environ["E2E_DESCRIPTORS"]], check=True)
    work = e2e.OUT / "host-calls"
    backend = e2e.harness.ExampleService(work / "backend", binary=e2e.BACKEND_BIN).start()
    (_, method, path, body), = [c for c in e2e.CASES if c[0] == CASE]
    load = e2e.Load(method, path, body)
    # The baseline is the same filter on the same path making no call ("<call> 0").
    modes = {"none": f"{CALLS[0]} 0"} | {call: f"{call} {N}" for call in CALLS}
    envoys = {}
    try:
        for name, mode in modes.items():
            envoys[name] = e2e.harness.Envoy("native", e2e.OPTIONS, backend, work / name, concurrency=e2e.WORKERS,
                                             edit_config=lambda config, mode=mode: e2e.behind_noop_wasm(config, mode)).start()
        per_request: dict[str, list[float]] = {name: [] for name in envoys}
        for envoy in envoys.values():  # warm-up
            e2e.wrk(envoy.base_url + load.path, load.method, load.body, CONNECTIONS, 1, load.content_type)
        for repeat in range(e2e.REPEATS):
            for name, envoy in envoys.items():
                before = cpu_seconds(envoy.proc.pid)
                r = e2e.wrk(envoy.base_url + load.path, load.method, load.body, CONNECTIONS, e2e.SECONDS,
                            load.content_type)
                per_request[name].append((cpu_seconds(envoy.proc.pid) - before) * 1e6 / max(r["requests"], 1))
                print(f"  {name:9} #{repeat + 1}: {r['rps']:7.0f} req/s, Envoy {per_request[name][-1]:6.1f} µs CPU "
                      f"per request", flush=True)
    finally:
        for envoy in envoys.values():
            envoy.stop()
        backend.stop()
    base = statistics.median(per_request["none"])
    rows = [f"Host calls, {CASE}, {CONNECTIONS} connections, {N} calls per request, median of {e2e.REPEATS} "
            f"alternated runs of {e2e.SECONDS}s; Envoy's CPU per request without calls: {base:.1f} µs",
            "", "| call | Envoy CPU µs per request | µs per call |", "|---|---:|---:|"]
    for call in CALLS:
        mine = statistics.median(per_request[call])
        rows.append(f"| {call} | {mine:.1f} | {(mine - base) / N:.2f} |")
    table = "\n".join(rows) + "\n"
    (e2e.OUT / "host_calls.md").write_text(table)
    print("\n" + table, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
