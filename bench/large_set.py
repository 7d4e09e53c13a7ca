#!/usr/bin/env python3
"""Writes the large descriptor set of `make bench` (footprint): every real proto
the venv carries (googleapis-common-protos: google/api, google/type, google/rpc,
google/longrunning, ...; grpcio-tools: google/protobuf) with their source info
(comments, as a `protoc --include_source_info` set has), bench.proto, and
generated packages (`synth.pNNN`: one service of 10 HTTP-bound methods and 10
messages of 16 fields each, like a real API surface) until the set passes
--min-bytes. The real protos alone are under 1 MB; the generated part is what
makes it "several MB", and makes the route table thousands of routes long.

  large_set.py OUT.pb [--min-bytes 4000000]   prints size, files, services
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TYPES = ["string", "int64", "int32", "bool", "double", "bytes", "uint32", "float"]


def synth_proto(index: int) -> str:
    pkg = f"synth.p{index:03d}"
    lines = ['syntax = "proto3";', f"package {pkg};", 'import "google/api/annotations.proto";',
             'import "google/protobuf/timestamp.proto";', ""]
    lines.append(f"// Generated API surface number {index} of the benchmark's large set.")
    lines.append(f"service Api{index:03d} {{")
    for m in range(10):
        verb, path = (("get", f"/synth/p{index:03d}/things{m}/{{id}}") if m % 2 == 0
                      else ("post", f"/synth/p{index:03d}/things{m}"))
        body = ' body: "*"' if verb == "post" else ""
        lines.append(f"  // Method {m} of the generated service.")
        lines.append(f"  rpc Method{m}(Thing{m}) returns (Thing{(m + 1) % 10}) {{")
        lines.append(f'    option (google.api.http) = {{ {verb}: "{path}"{body} }};')
        lines.append("  }")
    lines.append("}")
    for m in range(10):
        lines.append(f"// Message {m}: scalar, repeated, nested and map fields.")
        lines.append(f"message Thing{m} {{")
        lines.append("  string id = 1;")
        for f in range(2, 13):
            t = TYPES[(f + m) % len(TYPES)]
            rep = "repeated " if f % 5 == 0 else ""
            lines.append(f"  // Field {f} of message {m}.")
            lines.append(f"  {rep}{t} field_{m}_{f} = {f};")
        lines.append(f"  Thing{(m + 3) % 10} related = 13;")
        lines.append("  map<string, string> labels = 14;")
        lines.append("  google.protobuf.Timestamp update_time = 15;")
        lines.append(f"  repeated Thing{(m + 7) % 10} children = 16;")
        lines.append("}")
    return "\n".join(lines) + "\n"


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"error: python package {name} not installed (make setup installs it)")
    return Path(list(spec.submodule_search_locations)[0])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--min-bytes", type=int, default=4_000_000)
    a = p.parse_args()
    google_common = package_dir("google.api").parents[1]  # site-packages (holds google/api, google/type, ...)
    wkt = package_dir("grpc_tools") / "_proto"  # google/protobuf/*.proto
    real = sorted(str(f.relative_to(google_common)) for f in (google_common / "google").rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = Path(a.out).resolve()
        services = ["bench.v1.Bench"]
        count = 40
        while True:
            files = []
            for i in range(count):
                path = tmp / "synth" / f"p{i:03d}.proto"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(synth_proto(i))
                files.append(f"synth/p{i:03d}.proto")
            cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp}", f"-I{REPO / 'bench' / 'proto'}",
                   f"-I{google_common}", f"-I{wkt}", "--include_imports", "--include_source_info",
                   f"--descriptor_set_out={out}", "bench/v1/bench.proto", *real, *files]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                raise SystemExit(f"protoc failed:\n{run.stderr[-3000:]}")
            size = out.stat().st_size
            if size >= a.min_bytes or count >= 999:
                break
            count = min(999, int(count * a.min_bytes / size) + 1)
        services += [f"synth.p{i:03d}.Api{i:03d}" for i in range(count)]
    print(json.dumps({"bytes": size, "real_protos": len(real) + 1, "generated_protos": count,
                      "services": services}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
