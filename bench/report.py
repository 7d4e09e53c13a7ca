#!/usr/bin/env python3
"""Last step of `make bench`: one report from the parts' outputs, with the
machine it ran on and each target of issue 7 marked met or missed.

Reads BENCH_OUT/{e2e.json,alloc.json,footprint.json,footprint.md} and
criterion's target/criterion/<group>/<who>/<case>/new/estimates.json; writes
BENCH_OUT/REPORT.md and prints it. A missing part is reported as missing.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("BENCH_OUT", REPO / "build" / "bench")).resolve()
CRITERION = REPO / "target" / "criterion"


def load(name: str):
    path = OUT / name
    return json.loads(path.read_text()) if path.is_file() else None


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    mem = ""
    try:
        kib = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = f", {kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{cpu}, nproc {nproc}{mem}, {platform.system()} {platform.release()}"


def criterion_ns(group: str, who: str, case: str) -> float | None:
    path = CRITERION / group / who / case / "new" / "estimates.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())["median"]["point_estimate"]


def mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def main() -> int:
    lines = [f"Machine: {machine()}.", ""]
    targets = []

    e2e = load("e2e.json")
    lines.append("### End to end (native grpc_json_transcoder vs the Wasm filter, same Envoy 1.40, same backend, wrk)\n")
    if e2e:
        lines.append((OUT / "e2e.md").read_text())
        for case in sorted({s["case"] for s in e2e["summary"] if s["case"].startswith("order")}):
            rows = [s for s in e2e["summary"] if s["case"] == case]
            worst = min(rows, key=lambda s: s["ratio"])
            targets.append((f"throughput >= 1.1x native, realistic message, {case} (worst concurrency)",
                            f"{worst['ratio']:.2f} ({worst['connections']} conns)", worst["ratio"] >= 1.1))
            worst99 = max(rows, key=lambda s: s["p99_ratio"])
            targets.append((f"p99 no worse than native, {case} (worst concurrency)",
                            f"{worst99['p99_ratio']:.2f}x native ({worst99['connections']} conns)",
                            worst99["p99_ratio"] <= 1.0))
    else:
        lines.append("(not run)\n")

    lines.append("### Engine alone (criterion, median time per message; baseline = prost-reflect DynamicMessage + serde_json)\n")
    lines += ["| direction | message | engine µs | DynamicMessage µs | speed-up |", "|---|---|---:|---:|---:|"]
    for group, label in (("json_to_grpc", "JSON -> gRPC frame"), ("grpc_to_json", "gRPC frame -> JSON")):
        for case in ("small", "order"):
            ours, base = criterion_ns(group, "engine", case), criterion_ns(group, "dynamic_message", case)
            if ours is None or base is None:
                lines.append(f"| {label} | {case} | (not run) | | |")
                continue
            lines.append(f"| {label} | {case} | {ours / 1000:.2f} | {base / 1000:.2f} | **{base / ours:.2f}x** |")
            if case == "order":
                targets.append((f"engine >= 2x the DynamicMessage baseline, {label}, order", f"{base / ours:.2f}x",
                                base / ours >= 2))
    alloc = load("alloc.json")
    if alloc:
        lines += ["", "Heap allocations per message (counting allocator, benches/alloc.rs):", "",
                  "| direction | message | engine allocs / bytes | DynamicMessage allocs / bytes |", "|---|---|---:|---:|"]
        for direction in ("json_to_grpc", "grpc_to_json"):
            for case in ("small", "order"):
                got = {r["who"]: r for r in alloc if r["direction"] == direction and r["case"] == case}
                if "engine" in got and "dynamic_message" in got:
                    e, d = got["engine"], got["dynamic_message"]
                    lines.append(f"| {direction} | {case} | {e['allocations']} / {e['bytes']} | "
                                 f"{d['allocations']} / {d['bytes']} |")
        load_row = next((r for r in alloc if r["direction"] == "load"), None)
        if load_row:
            lines += ["", f"Loading the large descriptor set natively (no Wasm): config JSON parse {load_row['parse_ms']:.1f} ms, "
                          f"DescriptorPool::decode {load_row['pool_ms']:.1f} ms as given / {load_row['pool_stripped_ms']:.1f} ms "
                          f"without source info, Transcoder::from_json {load_row['load_ms']:.1f} ms in total "
                          f"({load_row['allocations']} allocations)."]
    lines.append("")

    lines.append("### Footprint (real Envoy: exec to ready, the filter's own load time per VM, resident memory)\n")
    foot = load("footprint.json")
    if foot:
        lines.append((OUT / "footprint.md").read_text())
        size = next(s for name, s in foot["wasm_sizes"] if name.startswith("build/"))
        targets.append(("the .wasm under 1 MB (as make wasm ships it)", f"{size:,} bytes", size < 1_000_000))
        best = min(s for _, s in foot["wasm_sizes"])
        targets.append(("the .wasm under 1 MB (smallest wasm-opt level)", f"{best:,} bytes", best < 1_000_000))
        large = [r for r in foot["starts"] if r["set"] == "large" and r["flavour"] == "wasm" and r["load_ms"] is not None]
        if large:
            worst = max(r["load_ms_max"] for r in large)
            targets.append(("VM start < 50 ms per worker, large set (filter's configure: descriptor decode + routes)",
                            f"{worst:.1f} ms (max over VMs)", worst < 50))
    else:
        lines.append("(not run)\n")

    lines += ["### Targets\n", "| target | measured | |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {mark(ok)} |" for name, value, ok in targets]
    report = "\n".join(lines) + "\n"
    (OUT / "REPORT.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
