#!/usr/bin/env python3
"""Runs the `run:` steps of the CI recipe docs/ci/descriptors.yml (a GitHub Actions
workflow) locally, as GitHub's `shell: bash` does (bash -eo pipefail), with `rgp` on
PATH and the workflow's `env:` (overridable). Used by tests/cli/test_ci_recipe.py and
by `make publish-descriptors`, so the recipe users copy is the one that is tested.

  ci_recipe.py --descriptors     build, check, diff, openapi, publish descriptors/ into
                                 descriptors/published (ALLOW_BREAKING=true to accept
                                 breaking changes); RGP=path/to/rgp (default target/debug/rgp)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "docs" / "ci" / "descriptors.yml"
RGP = Path(os.environ.get("RGP", str(ROOT / "target" / "debug" / "rgp"))).resolve()
# The steps a local run performs: everything but installing rgp and committing.
STEPS = ("build", "check", "diff", "openapi", "publish")

# The project's own descriptors/, published by the same recipe into descriptors/published.
PROJECT_ENV = {
    "PROTO_DIR": "descriptors",
    "PROTOS": "bookstore/v1/bookstore.proto echo/v1/echo.proto",
    "NAME": "example",
    "NAMESPACE": "default",
    "FILTER_OPTIONS": "envoy/transcoder-options.json",
    "PUBLISHED": "descriptors/published",
}


def workflow(path: Path = WORKFLOW) -> tuple[dict, dict]:
    """(the workflow's env, {step name: step}) of its one job."""
    doc = yaml.safe_load(path.read_text())
    (job,) = doc["jobs"].values()
    return dict(doc["env"]), {s["name"]: s for s in job["steps"] if "name" in s}


def run_steps(names=STEPS, env: dict | None = None, cwd: Path = ROOT, runner_temp: Path | None = None):
    """Runs the named steps in order, stopping at the first that fails.

    Returns [(name, CompletedProcess)]. `${{ ... }}` expressions of the workflow's env
    (ALLOW_BREAKING) default to "false" unless `env` sets them."""
    wf_env, steps = workflow()
    full = dict(os.environ)
    for k, v in wf_env.items():
        full[k] = "false" if "${{" in str(v) else str(v)
    full.update(env or {})
    full["PATH"] = f"{RGP.parent}{os.pathsep}{full.get('PATH', '')}"
    temp = runner_temp or Path(tempfile.mkdtemp(prefix="rgp-ci-"))
    full["RUNNER_TEMP"] = str(temp)
    results = []
    for name in names:
        step = steps[name]
        assert step.get("shell") == "bash", f"step {name}: shell: bash expected"
        r = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                           cwd=cwd, env=full, capture_output=True, text=True)
        results.append((name, r))
        if r.returncode != 0:
            break
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--descriptors", action="store_true", required=True,
                   help="publish the project's descriptors/ into descriptors/published")
    p.parse_args(argv)
    env = dict(PROJECT_ENV)
    if "ALLOW_BREAKING" in os.environ:
        env["ALLOW_BREAKING"] = os.environ["ALLOW_BREAKING"]
    for name, r in run_steps(env=env):
        print(f"--- {name} (exit {r.returncode})")
        sys.stdout.write(r.stdout)
        sys.stdout.write(r.stderr)
        if r.returncode != 0:
            return r.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
