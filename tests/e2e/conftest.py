"""Session fixtures of the end-to-end tests.

Run with `make test-e2e` (builds first), or after a build:
    .venv/bin/python -m pytest tests/e2e -k baseline

Fixtures:
  example_service                      session: the example gRPC backend (ExampleService:
                                       .host, .port, .address, .log_path)
  filter_flavour                       the build of our filter under test: every test that
                                       uses the fixtures below runs once per
                                       harness.FILTER_FLAVOURS ("wasm", "dynmod"; E2E_FILTERS
                                       narrows it, e.g. E2E_FILTERS=dynmod)
  envoy_factory(flavour="filter", options=None, *, route_timeout="15s") -> Envoy
                                       session: an Envoy with Envoy's own transcoder
                                       ("native") or our filter ("filter": the build under
                                       test; "wasm"/"dynmod" name one) and the given
                                       GrpcJsonTranscoder options (dict, no descriptor;
                                       None = envoy/transcoder-options.json); started once
                                       per (flavour, options), restarted if its Wasm VM failed.
                                       Raises harness.EnvoyStartError if it does not start.
  native_envoy, wasm_envoy             envoy_factory("native"/"filter") with default options
                                       (wasm_envoy: our filter, whichever build is under test)
  both(options, method, path, headers=None, body=None) -> Pair(native, wasm)
                                       the same request through native and our filter
harness.Envoy: .flavour .options .base_url .listen_port .admin_url .log_path .config_path;
  request(method, path, headers=None, body=None, **requests_kw) -> requests.Response
  (dict/list body = JSON), get(path, **kw), post(path, body=None, **kw),
  grpc(path, message=b"", metadata=None) -> harness.GrpcResult (native gRPC over h2c),
  admin(path), log_size(), log_text(since=0), wait_for_log(regex, since=0, timeout=5),
  wasm_failures(since=0), assert_no_wasm_failures(since=0).
harness also has with_defaults(**overrides), wasm_failure_lines(text), grpc_call(port, ...),
grpc_frame(msg), EnvoyStartError (.log, .config_path), MissingArtifact.
Every test also fails if a wasm Envoy logged a panic, trap or VM failure while
it ran (harness.WASM_FAILURE_PATTERNS), unless marked @pytest.mark.allow_wasm_failures;
a wasm Envoy with such lines is replaced by a fresh one when next asked for.
Logs and configs: build/e2e/ (kept after the session).
"""

from __future__ import annotations

import os
import shutil

import pytest

import harness
from harness import EnvoyPool, ExampleService, MissingArtifact, Pair


def _or_fail(make):
    """make(), but a missing binary fails the test with the make target to run."""
    try:
        return make()
    except MissingArtifact as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def e2e_dir():
    """build/e2e (E2E_OUT): emptied at the start of a session, kept afterwards."""
    out = harness.OUT_DIR
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return out


@pytest.fixture(scope="session")
def example_service(e2e_dir):
    """The example gRPC service on a free port of 127.0.0.1."""
    service = _or_fail(lambda: ExampleService(e2e_dir / "example-service"))
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def _envoy_pool(request, e2e_dir, example_service):
    pool = EnvoyPool(backend=example_service, out_dir=e2e_dir)
    request.config.stash[_POOL_KEY] = pool
    yield pool
    pool.stop_all()


_POOL_KEY = pytest.StashKey[EnvoyPool]()


FILTERS = harness.SELECTED_FILTERS


@pytest.fixture(scope="session", params=FILTERS)
def filter_flavour(request):
    """The build of our filter under test ("wasm" or "dynmod"): same JSON, same answers."""
    return request.param


@pytest.fixture
def envoy_factory(_envoy_pool, filter_flavour):
    """envoy_factory(flavour="filter", options=None, *, route_timeout="15s") -> harness.Envoy"""

    def factory(flavour: str = "filter", options: dict | None = None, *, route_timeout: str = "15s"):
        flavour = filter_flavour if flavour == "filter" else flavour
        return _or_fail(lambda: _envoy_pool.get(flavour, options, route_timeout=route_timeout))

    return factory


@pytest.fixture
def native_envoy(envoy_factory):
    """Envoy's native grpc_json_transcoder with envoy/transcoder-options.json."""
    return envoy_factory("native")


@pytest.fixture
def wasm_envoy(envoy_factory):
    """Our filter (the build under test) with envoy/transcoder-options.json."""
    return envoy_factory("filter")


@pytest.fixture
def both(envoy_factory):
    """both(options, method, path, headers=None, body=None) -> Pair(native, wasm)

    Sends the same request through the native and the wasm Envoy (options: dict
    of GrpcJsonTranscoder fields, None for the defaults); body as Envoy.request."""

    def send(options, method, path, headers=None, body=None) -> Pair:
        native = envoy_factory("native", options)
        wasm = envoy_factory("filter", options)
        return Pair(native=native.request(method, path, headers=headers, body=body),
                    wasm=wasm.request(method, path, headers=headers, body=body))

    return send


# ----------------------------------------------------------------- Wasm failure check

def pytest_configure(config):
    config.addinivalue_line(
        "markers", "allow_wasm_failures: the test expects Wasm panics/VM failures in the log "
                   "(skips the automatic check)")


@pytest.fixture(autouse=True)
def _log_marks(request):
    """Notes where each Envoy's log stood when the test started (for failure reports)."""
    pool = request.config.stash.get(_POOL_KEY, None)
    request.node.stash[_MARKS_KEY] = {id(e): e.log_size() for e in pool.all()} if pool else {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Fails the test if a wasm Envoy logged a panic, trap or VM failure while it ran
    (or while it started, for an Envoy a session fixture started for this test)."""
    result = yield
    pool = item.config.stash.get(_POOL_KEY, None)
    if pool is not None:
        problems = []
        for envoy in pool.all():
            lines = envoy.take_new_wasm_failures()  # each line is reported once
            if lines and envoy.flavour in harness.FILTER_FLAVOURS:
                problems.append(f"{envoy!r}:\n  " + "\n  ".join(lines[:20]))
        if problems and not item.get_closest_marker("allow_wasm_failures"):
            pytest.fail("Wasm failures logged during the test (mark it allow_wasm_failures if "
                        "expected):\n" + "\n".join(problems), pytrace=False)
    return result


_MARKS_KEY = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach what each Envoy logged during the test."""
    report = yield
    if report.failed and call.when in ("call", "teardown"):
        pool = item.config.stash.get(_POOL_KEY, None)
        marks = item.stash.get(_MARKS_KEY, {})
        if pool is not None:
            for envoy in list(pool.envoys.values()):
                text = envoy.log_text(marks.get(id(envoy), 0))
                if text.strip():
                    lines = text.splitlines()[-60:]
                    report.sections.append((f"{envoy.flavour} Envoy log ({envoy.log_path})", "\n".join(lines)))
    return report
