#!/usr/bin/env python3
"""The filter's footprint (`make bench`, part 3), measured with the real Envoy:

- the .wasm size as cargo builds it and after `wasm-opt` -O3 / -Os / -Oz;
- for a small (bench.proto) and a large (bench/large_set.py, several MB)
  descriptor set, native and wasm flavours, Envoy --concurrency 1 and 2:
  time from exec to ready (admin /ready and the listener up), the filter's own
  load time per worker (its `loaded N routes ... in X ms` log line: descriptor
  decode + route table), and Envoy's resident memory (VmRSS) once ready. The
  memory one more worker costs is RSS(2 workers) - RSS(1 worker).

Environment: BENCH_OUT (default build/bench), E2E_ENVOY, E2E_WASM, BENCH_BACKEND,
BENCH_FOOTPRINT_RUNS (starts per configuration, median kept; default 3),
BENCH_FOOTPRINT_SETS and BENCH_FOOTPRINT_FLAVOURS (comma-separated subsets of
"small,large" and "native,wasm", to re-measure one part: `BENCH_FOOTPRINT_SETS=large
BENCH_FOOTPRINT_FLAVOURS=wasm` times only the large set's Wasm loads).
Writes BENCH_OUT/footprint.md and footprint.json; prints the tables.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("BENCH_OUT", REPO / "build" / "bench")).resolve()
BACKEND_BIN = Path(os.environ.get("BENCH_BACKEND", REPO / "target" / "release" / "bench-backend")).resolve()
WASM_RAW = REPO / "target" / "wasm32-wasip1" / "release" / "rust_grpc_proxy.wasm"
RUNS = int(os.environ.get("BENCH_FOOTPRINT_RUNS", "3"))
SETS = os.environ.get("BENCH_FOOTPRINT_SETS", "small,large").split(",")
FLAVOURS = os.environ.get("BENCH_FOOTPRINT_FLAVOURS", "native,wasm").split(",")

OUT.mkdir(parents=True, exist_ok=True)
os.environ.setdefault("E2E_DESCRIPTORS", str(OUT / "bench-descriptors.pb"))
os.environ.setdefault("E2E_ENVOY_LOG_LEVEL", "info")  # the filter's load line is at info
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import harness  # noqa: E402

LOADED = re.compile(r"loaded (\d+) routes for .* in ([0-9.]+) ms")


def wasm_sizes() -> list[tuple[str, int]]:
    sizes = [("cargo build --release (opt-level 3, lto, strip debuginfo)", WASM_RAW.stat().st_size)]
    for level in ("-O3", "-Os", "-Oz"):
        out = OUT / f"filter{level}.wasm"
        subprocess.run(["wasm-opt", level, str(WASM_RAW), "-o", str(out)], check=True)
        sizes.append((f"wasm-opt {level}", out.stat().st_size))
    sizes.append((f"build/rust_grpc_proxy.wasm (make wasm, what Envoy loads here)", harness.WASM_PATH.stat().st_size))
    return sizes


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_once(flavour: str, descriptor: Path, services: list[str], workers: int, backend) -> dict:
    harness.DESCRIPTORS = descriptor
    options = {"services": services, "convert_grpc_status": True}
    envoy = harness.Envoy(flavour, options, backend, OUT / "footprint-run" / f"{flavour}-{workers}", concurrency=workers)
    began = time.monotonic()
    envoy.start()
    ready = time.monotonic() - began
    try:
        time.sleep(0.5)  # let every worker finish its configure call
        rss = rss_kib(envoy.proc.pid)
        loads = [(int(n), float(ms)) for n, ms in LOADED.findall(envoy.log_text())]
    finally:
        envoy.stop()
    return {"ready_s": ready, "rss_kib": rss, "loads": loads}


def main() -> int:
    harness.require(BACKEND_BIN, "bench backend (make bench builds it)")
    small = OUT / "bench-descriptors.pb"
    subprocess.run([str(BACKEND_BIN), "descriptor-set", str(small)], check=True)
    large = OUT / "large.pb"
    info = json.loads(subprocess.run([sys.executable, str(REPO / "bench" / "large_set.py"), str(large)],
                                     check=True, capture_output=True, text=True).stdout)
    # For benches/alloc.rs, which times loading the same set natively.
    (OUT / "large-services.json").write_text(json.dumps(info["services"]))
    sets = {"small": (small, ["bench.v1.Bench"]), "large": (large, info["services"])}
    sets = {name: sets[name] for name in SETS}

    sizes = wasm_sizes()
    backend = harness.ExampleService(OUT / "footprint-run" / "backend", binary=BACKEND_BIN).start()
    results = []
    try:
        for set_name, (path, services) in sets.items():
            for flavour in FLAVOURS:
                for workers in (1, 2):
                    runs = [start_once(flavour, path, services, workers, backend) for _ in range(RUNS)]
                    loads = [ms for r in runs for _, ms in r["loads"]]
                    row = {
                        "set": set_name, "set_bytes": path.stat().st_size, "flavour": flavour, "workers": workers,
                        "ready_ms": statistics.median(r["ready_s"] for r in runs) * 1000,
                        "rss_mib": statistics.median(r["rss_kib"] for r in runs) / 1024,
                        "routes": runs[0]["loads"][0][0] if runs[0]["loads"] else None,
                        "load_ms": statistics.median(loads) if loads else None,
                        "load_ms_max": max(loads) if loads else None,
                        "load_lines": len(runs[0]["loads"]),
                    }
                    results.append(row)
                    print(f"  {set_name:5} {flavour:6} workers={workers}: ready {row['ready_ms']:.0f} ms, "
                          f"RSS {row['rss_mib']:.1f} MiB, filter load {row['load_ms']} ms "
                          f"({row['load_lines']} VMs configured)", flush=True)
    finally:
        backend.stop()

    lines = ["| .wasm | bytes |", "|---|---:|"] + [f"| {name} | {size:,} |" for name, size in sizes]
    lines += ["", f"Descriptor sets: small = bench.proto with imports ({small.stat().st_size:,} bytes); large = "
              f"{info['real_protos']} real protos with source info + {info['generated_protos']} generated API files "
              f"({large.stat().st_size:,} bytes, {len(info['services'])} services).", "",
              "| set | flavour | workers | exec to ready ms | filter load per VM ms (median / max) | Envoy RSS MiB "
              "| + per extra worker MiB |", "|---|---|---:|---:|---:|---:|---:|"]
    for row in results:
        one = next(r for r in results if r["set"] == row["set"] and r["flavour"] == row["flavour"] and r["workers"] == 1)
        extra = f"{row['rss_mib'] - one['rss_mib']:.1f}" if row["workers"] > 1 else ""
        load = f"{row['load_ms']:.1f} / {row['load_ms_max']:.1f}" if row["load_ms"] is not None else "n/a"
        lines.append(f"| {row['set']} | {row['flavour']} | {row['workers']} | {row['ready_ms']:.0f} | {load} | "
                     f"{row['rss_mib']:.1f} | {extra} |")
    table = "\n".join(lines)
    (OUT / "footprint.md").write_text(table + "\n")
    (OUT / "footprint.json").write_text(json.dumps({"wasm_sizes": sizes, "large_set": {
        k: v for k, v in info.items() if k != "services"}, "starts": results}, indent=1) + "\n")
    print("\n" + table, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
