#!/usr/bin/env python3
"""End-to-end benchmark of `make bench`: the same Envoy binary with (a) Envoy's
native grpc_json_transcoder, (b) the rust-grpc-proxy Wasm filter and (c) the
same filter as a dynamic module, in front of the same near-free gRPC backend
(src/bench-backend), loaded by the same wrk.

Two more Envoys bound what a transcoder can reach here:
- floor: no transcoding at all; wrk sends each case's equivalent gRPC call
  (the same request message, framed, `application/grpc` over HTTP/1.1) and
  Envoy only proxies it: the physical limit of this setup.
- toll: native's transcoder behind a Wasm filter that only returns Continue
  (bench/noop-filter): what any Wasm filter costs, before it does anything.
- io-toll: native's transcoder behind the same filter making the host calls ours
  makes for a unary request, each writing back what it read: what a Wasm
  transcoder pays to move a request's data across the VM boundary, before it
  transcodes anything.
- companion: the floor with the Lua companion (envoy/companion.lua, gated as we
  ship it) before its router; for a case without a body wrk sends the floor's
  gRPC call without one, its frame in the Wasm filter's marker header, which the
  companion moves into the body: what any Wasm transcoder pays on a GET to go
  through the router, since a Wasm filter cannot give such a request a body.
  Cases with a body send the floor's call (the gate skips the script).

The Envoys run side by side (each idle while another is measured); every case
is run native, wasm, dynmod, floor, toll, io-toll, companion, native, ... (BENCH_REPEATS times each),
after one warm-up run per flavour, and the table reports the median of the
repeats. Before any timing, each request is sent once to each and the answers
must be the same (JSON; the floor's gRPC answer decodes to the message native's
JSON says): a benchmark of failing requests would measure nothing.

Environment (all optional):
  BENCH_SECONDS       seconds per wrk run (default 5)
  BENCH_REPEATS       runs per flavour and case (default 3)
  BENCH_CONCURRENCY   comma-separated wrk connection counts (default 1,16,64)
  BENCH_ENVOY_WORKERS Envoy --concurrency (default 1: with wrk and the backend on 2 cores)
  BENCH_CASES         comma-separated case names to run (default: all)
  BENCH_FLAVOURS      comma-separated flavours (default native,wasm,dynmod,floor,toll,io-toll,companion; native is required;
                      wasm-alone: the Wasm build without its Lua companion, GETs by its own gRPC call)
  BENCH_OUT           output folder (default build/bench)
Paths: E2E_ENVOY, E2E_WASM (build/rust_grpc_proxy.wasm), E2E_DYNMOD (build/librust_grpc_proxy.so), BENCH_BACKEND
(target/release/bench-backend), BENCH_NOOP_WASM (target/wasm32-wasip1/release/noop_filter.wasm).

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
FLAVOURS = [f.strip() for f in os.environ.get("BENCH_FLAVOURS", "native,wasm,dynmod,floor,toll,io-toll,companion").split(",")
            if f.strip()]
if "native" not in FLAVOURS:
    FLAVOURS.insert(0, "native")
FILTERS = [f for f in FLAVOURS if f != "native"]
# The bounds, not transcoders of ours: they are run and tabled, not checked against targets.
BOUNDS = ("floor", "toll", "io-toll", "companion")
# The bounds whose requests are the floor's gRPC calls (their answers are gRPC, not JSON).
GRPC_BOUNDS = ("floor", "companion")
NOOP_WASM = Path(os.environ.get("BENCH_NOOP_WASM",
                                REPO / "target" / "wasm32-wasip1" / "release" / "noop_filter.wasm")).resolve()

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
    # The listing as a PHP client writes it: \u escapes, \/, quotes, a line break, nulls.
    ("escaped POST", "POST", "/v1/listings", PAYLOADS / "listing-escaped.json"),
]
# The floor's gRPC call per case: (path, request type, request message as JSON; None: the case's body).
GRPC_CALLS = {
    "small GET": ("/bench.v1.Bench/GetSmall", "bench.v1.SmallRequest",
                  {"id": "s-1", "name": "small message", "count": 42, "active": True}),
    "small POST": ("/bench.v1.Bench/PostSmall", "bench.v1.Small", None),
    "order GET": ("/bench.v1.Bench/GetOrder", "bench.v1.OrderRequest",
                  {"id": "order-000123", "customerId": "customer-4567", "status": "STATUS_PAID", "pageSize": 20,
                   "fields": ["items", "total"]}),
    "order POST": ("/bench.v1.Bench/PostOrder", "bench.v1.Order", None),
    "listing POST": ("/bench.v1.Bench/PostListing", "bench.v1.Listing", None),
    "catalog POST": ("/bench.v1.Bench/PostCatalog", "bench.v1.Catalog", None),
    "escaped POST": ("/bench.v1.Bench/PostListing", "bench.v1.Listing", None),
}
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


_TRANSCODER_FILTER = re.compile(r"\n( +)- name: envoy\.filters\.http\.grpc_json_transcoder\n(?:\1 .*\n)+")


def without_transcoder(config: str) -> str:
    """The floor: native's config with its transcoder filter gone (only the router is left)."""
    stripped = _TRANSCODER_FILTER.sub("\n", config, count=1)
    if stripped == config:
        raise RuntimeError("no grpc_json_transcoder filter found in the rendered config: update bench/e2e.py")
    return stripped


def behind_noop_wasm(config: str, mode: str = "") -> str:
    """The toll: a Wasm filter that only returns Continue, before native's transcoder
    (mode "io": one that also makes our filter's host calls, changing nothing)."""
    marker = "          - name: envoy.filters.http.grpc_json_transcoder\n"
    if marker not in config:
        raise RuntimeError("no grpc_json_transcoder filter found in the rendered config: update bench/e2e.py")
    noop = f"""          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: noop
                configuration: {{ "@type": type.googleapis.com/google.protobuf.StringValue, value: {json.dumps(mode)} }}
                vm_config:
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: {json.dumps(str(NOOP_WASM))} }} }}
"""
    return config.replace(marker, noop + marker, 1)


def with_companion(config: str) -> str:
    """The companion bound: the floor with the Lua companion, as the Wasm build's configs have it, before the router."""
    floor = without_transcoder(config)
    marker = "          - name: envoy.filters.http.router\n"
    if marker not in floor:
        raise RuntimeError("no router filter found in the rendered config: update bench/e2e.py")
    return floor.replace(marker, "          " + harness.render.companion_filter(" " * 10) + "\n" + marker, 1)


def companion_marker() -> str:
    """The header the companion takes a frame from: the one its gate (envoy/companion-gate.json) looks for."""
    gate = json.loads(harness.render.COMPANION_GATE.read_text())
    return gate["single_predicate"]["input"]["typed_config"]["header_name"]


class Load:
    """What wrk sends for one case to one flavour: method, body file, content type, extra headers."""

    def __init__(self, method: str, path: str, body: Path | None, content_type: str = "application/json",
                 headers: dict[str, str] | None = None):
        self.method, self.path, self.body, self.content_type = method, path, body, content_type
        self.headers = headers or {}


def grpc_loads(descriptor_set: Path, work: Path) -> tuple[dict, dict, dict]:
    """Per case: the floor's Load (the framed request message in a file), the companion's
    (without a body, the frame in the marker, for a case without one) and the response
    class, from the bench backend's descriptor set (Python protobuf, no protoc)."""
    from google.protobuf import descriptor_pb2, json_format, message_factory

    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes()).file
    classes = message_factory.GetMessages(files)
    loads, companion, responses = {}, {}, {}
    marker = companion_marker()
    service = next(s for f in files for s in f.service if f.package == "bench.v1")
    outputs = {m.name: m.output_type.lstrip(".") for m in service.method}
    for name, method, path, body in CASES:
        grpc_path, request_type, message = GRPC_CALLS[name]
        request = classes[request_type]()
        json_format.Parse(body.read_text() if message is None else json.dumps(message), request)
        data = request.SerializeToString()
        frame = work / f"{name.replace(' ', '-')}.grpc"
        frame.write_bytes(b"\0" + len(data).to_bytes(4, "big") + data)
        loads[name] = Load("POST", grpc_path, frame, "application/grpc")
        companion[name] = loads[name] if body is not None else Load(
            "POST", grpc_path, None, "application/grpc",
            {"Content-Type": "application/grpc", "TE": "trailers", marker: frame.read_bytes().hex()})
        responses[name] = classes[outputs[grpc_path.rsplit("/", 1)[1]]]
    return loads, companion, responses


def wrk(url: str, method: str, body: Path | None, connections: int, seconds: int,
        content_type: str = "application/json", headers: dict[str, str] | None = None) -> dict:
    env = dict(os.environ, BENCH_METHOD=method, BENCH_BODY_FILE=str(body) if body else "",
               BENCH_CONTENT_TYPE=content_type,
               BENCH_HEADERS="\n".join(f"{k}: {v}" for k, v in (headers or {}).items()))
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


def check_same_answers(envoys: dict, loads: dict, responses: dict) -> None:
    from google.protobuf import json_format

    for name, method, path, body in CASES:
        answers = {}
        for flavour, envoy in envoys.items():
            load = loads[flavour][name]
            data = load.body.read_bytes() if load.body else None
            headers = dict(load.headers, **({"Content-Type": load.content_type} if data else {}))
            r = envoy.request(load.method, load.path, body=data, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"{name}: {flavour} answered {r.status_code}: {r.text[:500]}")
            answers[flavour] = r.content if load.content_type == "application/grpc" else r.json()
        for flavour in FILTERS:
            if flavour in GRPC_BOUNDS:
                # The floor's answer is the gRPC message native's JSON was made from.
                got, want = responses[name](), responses[name]()
                got.ParseFromString(answers[flavour][5:])
                json_format.Parse(json.dumps(answers["native"]), want)
                same = got == want and len(answers[flavour]) > 5
            else:
                same = answers["native"] == answers[flavour]
            if not same:
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
    json_loads = {name: Load(method, path, body) for name, method, path, body in CASES}
    grpc, companion, responses = grpc_loads(Path(os.environ["E2E_DESCRIPTORS"]), OUT)
    loads = {flavour: {"floor": grpc, "companion": companion}.get(flavour, json_loads) for flavour in FLAVOURS}
    if "toll" in FLAVOURS or "io-toll" in FLAVOURS:
        harness.require(NOOP_WASM, "no-op Wasm filter (make bench builds it)")
    try:
        for flavour in FLAVOURS:
            edit = {"floor": without_transcoder, "toll": behind_noop_wasm,
                    "io-toll": lambda config: behind_noop_wasm(config, "io"), "companion": with_companion}.get(flavour)
            runs_as = {"floor": "native", "toll": "native", "io-toll": "native", "companion": "native",
                       "wasm-alone": "wasm"}.get(flavour, flavour)
            options = dict(OPTIONS, lua_companion=False) if flavour == "wasm-alone" else OPTIONS
            envoys[flavour] = harness.Envoy(runs_as, options, backend, work / flavour, concurrency=WORKERS,
                                            edit_config=edit).start()
        print(f"Envoy {WORKERS} worker(s); wrk 1 thread; {SECONDS}s per run, {REPEATS} runs per flavour, "
              f"concurrency {CONCURRENCY}", flush=True)
        check_same_answers(envoys, loads, responses)
        runs = []
        for name, method, path, body in CASES:
            # The companion bound is the floor where a request has a body (its gate skips the script).
            measured = {f: envoy for f, envoy in envoys.items() if f != "companion" or body is None}
            for connections in CONCURRENCY:
                for flavour, envoy in measured.items():  # warm-up, not recorded
                    load = loads[flavour][name]
                    wrk(envoy.base_url + load.path, load.method, load.body, connections, 1, load.content_type,
                        load.headers)
                for repeat in range(REPEATS):
                    for flavour, envoy in measured.items():
                        load = loads[flavour][name]
                        r = wrk(envoy.base_url + load.path, load.method, load.body, connections, SECONDS,
                                load.content_type, load.headers)
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
    for f in ("wasm", "dynmod"):
        for bound in BOUNDS:
            if f in FLAVOURS and bound in FLAVOURS:
                head += f" {f}/{bound} |"
                rule += "---:|"
    rows = [head, rule]
    summary = []
    for name, _, _, body in CASES:
        for connections in CONCURRENCY:
            med = {}
            for flavour in FLAVOURS:
                mine = [r for r in runs if r["case"] == name and r["flavour"] == flavour and r["connections"] == connections]
                if mine:
                    med[flavour] = {k: statistics.median(r[k] for r in mine) for k in ("rps", "p50_us", "p99_us")}
            entry = dict(case=name, connections=connections, bodiless=body is None,
                         **{f"{f}_{k}": v for f in med for k, v in med[f].items()})
            row = f"| {name} | {connections} | {med['native']['rps']:.0f} |"
            for f in FILTERS:
                if f not in med:
                    row += " | |"
                    continue
                ratio = med[f]["rps"] / med["native"]["rps"]
                p99_ratio = med[f]["p99_us"] / med["native"]["p99_us"]
                # ratio/p99_ratio: the Wasm build's (what bench/report.py checks); dynmod_*: the module's.
                prefix = "" if f == "wasm" else f"{f}_"
                entry[f"{prefix}ratio"], entry[f"{prefix}p99_ratio"] = ratio, p99_ratio
                row += f" {med[f]['rps']:.0f} | **{ratio:.2f}** |"
            row += f" {fmt_ms(med['native']['p99_us'])} |"
            for f in FILTERS:
                row += (f" {fmt_ms(med[f]['p99_us'])} | {med[f]['p99_us'] / med['native']['p99_us']:.2f} |"
                        if f in med else " | |")
            for f in ("wasm", "dynmod"):
                for bound in BOUNDS:
                    if f in FLAVOURS and bound in FLAVOURS:
                        if f in med and bound in med:
                            entry[f"{f}_vs_{bound}"] = med[f]["rps"] / med[bound]["rps"]
                            row += f" {entry[f'{f}_vs_{bound}']:.2f} |"
                        else:
                            row += " |"
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
