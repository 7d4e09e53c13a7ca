"""The README's demo, run as written: its curl lines against `envoy/demo.sh` (what
`make demo` runs), starting and stopping the demo the ways the README says.

The walkthrough blocks are the ```sh blocks right after a line
`<!-- demo walkthrough, run by tests/e2e/test_readme_demo.py[: VAR=value ...] -->`.
In such a block a command is a line that is not a comment (`\\` continues it);
the `# ` lines right below it are its output as the README prints it, and a blank
line ends them (so comments after a blank line only explain). Every command must
show its output. A command with `-i` must print the shown lines in that order among
its own (headers such as `date` change); any other must print exactly the shown lines.

Each block runs against a fresh demo (fresh data) on free ports: only the ports of
127.0.0.1:8080 and :9901 are replaced, everything else runs as printed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import harness

README = harness.REPO / "README.md"
DEMO = harness.REPO / "envoy" / "demo.sh"
MARKER = re.compile(r"^<!-- demo walkthrough, run by tests/e2e/test_readme_demo\.py(?:: (?P<env>[^>]*?))? -->$")
EXPECTED = {"response": "GET md-hello=world request=hello query=666"}


@dataclass
class Step:
    line: int
    command: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Walkthrough:
    line: int
    env: dict[str, str]
    steps: list[Step]

    @property
    def id(self) -> str:
        return " ".join([f"line{self.line}", *(f"{k}={v}" for k, v in self.env.items())])


def walkthroughs(text: str) -> list[Walkthrough]:
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        m = MARKER.match(line.strip())
        if not m:
            continue
        assert lines[i + 1].strip() == "```sh", f"README.md:{i + 2}: the walkthrough marker must be followed by ```sh"
        env = dict(item.split("=", 1) for item in shlex.split(m.group("env") or ""))
        steps: list[Step] = []
        collecting = False
        j = i + 2
        while lines[j].strip() != "```":
            text_line = lines[j]
            if not text_line.strip():
                collecting = False
            elif text_line.startswith("#"):
                if collecting:
                    steps[-1].expected.append(text_line[2:] if text_line.startswith("# ") else "")
            else:
                start = j
                command = text_line
                while command.endswith("\\"):
                    j += 1
                    command = command[:-1] + lines[j]
                steps.append(Step(start + 1, command))
                collecting = True
            j += 1
        found.append(Walkthrough(i + 1, env, steps))
    return found


WALKTHROUGHS = walkthroughs(README.read_text())


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def curl_path() -> str:
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is not installed (Debian: apt-get install curl)", pytrace=False)
    return curl


class Demo:
    """envoy/demo.sh with its own ports and state directory, so a user's demo is left alone."""

    def __init__(self, state: Path, extra_env: dict[str, str] | None = None):
        self.state = state
        self.listen, self.admin, self.backend = free_ports(3)
        self.env = {
            **os.environ,
            "DEMO_DIR": str(state),
            "DEMO_LISTEN_PORT": str(self.listen),
            "DEMO_ADMIN_PORT": str(self.admin),
            "DEMO_BACKEND_PORT": str(self.backend),
            "DEMO_ENVOY": str(harness.require(harness.ENVOY_BIN, "Envoy")),
            "DEMO_WASM": str(harness.require(harness.WASM_PATH, "the filter")),
            "DEMO_DESCRIPTORS": str(harness.require(harness.DESCRIPTORS, "the descriptor set")),
            "DEMO_EXAMPLE_SERVICE": str(harness.require(harness.EXAMPLE_SERVICE_BIN, "the example service")),
            **(extra_env or {}),
        }

    def pids(self) -> list[int]:
        return [int(p.read_text()) for p in self.state.glob("demo-*.pid")]

    def start_detached(self) -> str:
        done = subprocess.run([str(DEMO), "start"], env={**self.env, "DEMO_DETACH": "1"}, capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, f"demo.sh start failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def stop(self) -> str:
        done = subprocess.run([str(DEMO), "stop"], env=self.env, capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def envoy_log(self) -> str:
        path = self.state / "demo-envoy.log"
        return path.read_text(errors="replace") if path.exists() else ""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as stopped.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def run_step(step: Step, demo: Demo) -> list[str]:
    command = step.command.replace("127.0.0.1:8080", f"127.0.0.1:{demo.listen}")
    command = command.replace("127.0.0.1:9901", f"127.0.0.1:{demo.admin}")
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, f"README.md:{step.line}: `{step.command}` failed ({done.returncode}): {done.stderr}"
    return [line.rstrip("\r") for line in done.stdout.splitlines()]


def matches(step: Step, output: list[str]) -> bool:
    if re.search(r"(^|\s)-[a-zA-Z]*i", step.command):
        it = iter(output)
        return all(any(line == want for line in it) for want in step.expected)
    return output == step.expected


def test_readme_has_walkthroughs():
    """The README's walkthrough covers create, list, get, update, delete, an error and a stream."""
    assert WALKTHROUGHS, "README.md has no demo walkthrough marker"
    commands = "\n".join(s.command for w in WALKTHROUGHS for s in w.steps)
    for what, pattern in {
        "create": r"-X POST \S+/v1/shelves ", "list": r"curl \S+/v1/shelves$", "get": r"curl \S+/v1/shelves/\d+/books/\d+$",
        "update": r"-X PATCH ", "delete": r"-X DELETE ", "an error": r"curl -i ", "a stream": r"books:stream",
    }.items():
        assert re.search(pattern, commands, re.M), f"the README's walkthrough has no {what} ({pattern})"
    for w in WALKTHROUGHS:
        for step in w.steps:
            assert step.expected, f"README.md:{step.line}: `{step.command}` shows no output"


@pytest.mark.parametrize("walkthrough", WALKTHROUGHS, ids=lambda w: w.id)
def test_readme_walkthrough(walkthrough: Walkthrough, tmp_path):
    curl_path()
    demo = Demo(tmp_path / "demo", walkthrough.env)
    started = demo.start_detached()
    try:
        assert "Detached" in started, started
        for step in walkthrough.steps:
            output = run_step(step, demo)
            # The filter counts a request once its answer is complete, which can be just
            # after curl has it: give the admin's counters a moment.
            deadline = time.monotonic() + (5 if "127.0.0.1:9901" in step.command else 0)
            while not matches(step, output) and time.monotonic() < deadline:
                time.sleep(0.2)
                output = run_step(step, demo)
            assert matches(step, output), (
                f"README.md:{step.line}: `{step.command}`\nREADME shows:\n" + "\n".join(step.expected)
                + "\n\nit printed:\n" + "\n".join(output))
        assert harness.wasm_failure_lines(demo.envoy_log()) == []
    finally:
        pids = demo.pids()
        stopped = demo.stop()
    assert stopped.strip() == "demo stopped"
    assert pids and not any(alive(p) for p in pids), "make demo-stop left a process running"
    assert not port_open(demo.listen) and not port_open(demo.backend)


def test_demo_stops_on_ctrl_c(tmp_path):
    """`make demo` runs until Ctrl-C, which stops both processes (the README says so)."""
    demo = Demo(tmp_path / "demo")
    # Its own process group, as a terminal's foreground job is: Ctrl-C signals the group.
    # SIGINT as a terminal's job has it: a suite started in the background (`cmd &` from a
    # script) hands SIGINT down ignored, and bash cannot trap a signal ignored on entry.
    proc = subprocess.Popen([str(DEMO), "start"], env=demo.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Ctrl-C stops both"):
                break
        assert lines and lines[-1].startswith("Ctrl-C stops both"), "".join(lines)
        pids = demo.pids()
        assert len(pids) == 2 and all(alive(p) for p in pids)
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            demo.stop()
    assert proc.returncode == 0, "".join(lines) + out
    assert "demo stopped" in out
    assert not any(alive(p) for p in pids)
    assert not port_open(demo.listen)


@pytest.mark.parametrize("flavour", ["filter", "native"])
def test_readme_curl_line(envoy_factory, flavour):
    """curl 'http://127.0.0.1:<port>/api/v1/echo/hello/get?query=666' -H 'MD-hello: world'"""
    curl = curl_path()
    envoy = envoy_factory(flavour)
    url = f"http://127.0.0.1:{envoy.listen_port}/api/v1/echo/hello/get?query=666"
    done = subprocess.run([curl, "-sS", "--max-time", "10", "-w", "\n%{http_code} %{content_type}", url,
                           "-H", "MD-hello: world"], capture_output=True, text=True, timeout=20, check=False)
    assert done.returncode == 0, done.stderr
    body, _, status_line = done.stdout.rpartition("\n")
    assert status_line == "200 application/json", done.stdout
    assert json.loads(body) == EXPECTED
    # The compact form the README prints.
    assert body == '{"response":"GET md-hello=world request=hello query=666"}'
