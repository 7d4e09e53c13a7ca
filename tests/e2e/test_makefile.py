"""`make help` against the Makefile itself: every target is listed, and the `test`
line names exactly the suites `make test` runs, in its order.

What make itself knows (`make -pRrq`, its database after reading the Makefile) is
the reference, not the text of the Makefile, so a target added or a suite
dropped anywhere shows up here.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import harness

MAKEFILE = harness.REPO / "Makefile"
# Internal: an always-out-of-date prerequisite, not something to run.
NOT_TARGETS = {"FORCE"}


def make(*args: str, cwd: Path = harness.REPO) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)


def database() -> str:
    # -q: nothing is run; its exit status (1: not up to date) does not matter here.
    return make("-pRrq", "-f", str(MAKEFILE), "help").stdout


def rule_prerequisites(db: str, target: str) -> list[str]:
    for line in db.splitlines():
        if line.startswith(f"{target}:") and not line.startswith(f"{target}:="):
            return line.split(":", 1)[1].split()
    raise AssertionError(f"no rule for {target} in make's database")


def help_entries() -> dict[str, str]:
    done = make("help")
    assert done.returncode == 0, done.stderr
    entries: dict[str, str] = {}
    last = None
    for line in done.stdout.splitlines()[1:]:
        m = re.match(r"^  (\S+) +(.*)$", line)
        if m:
            last = m.group(1)
            assert last not in entries, f"make help lists {last} twice"
            entries[last] = m.group(2)
        else:
            assert last and line.startswith(" " * 23), f"unexpected make help line {line!r}"
            entries[last] += " " + line.strip()
    return entries


def test_help_names_every_target():
    db = database()
    phony = set(rule_prerequisites(db, ".PHONY")) - NOT_TARGETS
    # Every rule with a plain name must be phony (and so listed), or it could dodge the check.
    named_rules = set(re.findall(r"^([a-z][a-z0-9-]*):(?!=)", MAKEFILE.read_text(), re.M)) - NOT_TARGETS
    assert named_rules <= phony, f"rules missing from .PHONY: {sorted(named_rules - phony)}"
    listed = help_entries()
    assert set(listed) == phony, (f"missing from make help: {sorted(phony - set(listed))}; "
                                  f"listed but no target: {sorted(set(listed) - phony)}")
    for name, text in listed.items():
        assert text.strip() and "$(" not in text, f"make help: {name}: {text!r}"
    # The ones the README once lacked.
    for name in ("rust-targets", "venv", "fuzz-build", "fuzz-toolchain", "bench-tools", "test-filter",
                 "test-gateway", "demo-stop"):
        assert name in listed


def test_help_lists_what_make_test_runs():
    parts = rule_prerequisites(database(), "test")
    assert parts and all(p.startswith("test-") for p in parts), parts
    text = help_entries()["test"]
    assert text.endswith("in this order: " + " ".join(parts)), text
    # The suites the help once left out.
    assert {"test-filter", "test-gateway"} <= set(parts)


def test_help_comment_must_sit_on_its_rule(tmp_path):
    """A `## name:` comment that is not directly above `name:` makes `make help` fail."""
    text = MAKEFILE.read_text()
    broken = text.replace("\nclean:", "\n\nclean:", 1)
    assert broken != text
    (tmp_path / "Makefile").write_text(broken)
    done = make("-f", str(tmp_path / "Makefile"), "help", cwd=harness.REPO)
    assert done.returncode != 0
    assert "help comment of clean is not directly above its rule" in done.stderr


@pytest.mark.parametrize("variable", ["WASM", "TEST_PARTS", "RUST_TARGETS"])
def test_help_shows_variable_values(variable):
    db = database()
    value = re.search(rf"^{variable} :?= (.*)$", db, re.M)
    assert value, variable
    assert value.group(1).strip() in " ".join(help_entries().values())
