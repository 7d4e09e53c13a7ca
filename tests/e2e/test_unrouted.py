"""Transcoded requests no Envoy route takes: 404 NOT_FOUND, as Envoy's router answers.

Three route configurations around the example service, each with the native
filter and with ours (each build: wasm, dynmod):
- `host`: the only virtual host serves `library.example.test`; a request for
  another host matches nothing (REST path or gRPC path);
- `grpc-direct`: the gRPC path of the bookstore has a direct-response route,
  the REST paths go to the cluster;
- `grpc-redirect`: the same with a redirect.

Every method and body (GET, POST, a server stream, a client stream) answers 404
with a JSON google.rpc.Status, code 5, naming the host and the REST request.
Requests without a body: the module gives them a body, and the Wasm build has
its Lua companion give them one (envoy/companion.lua, on in every configuration
we render); then they are routed again on the gRPC path like native's. Only the
Wasm build without the companion (`"lua_companion": false`) calls the cluster
of the route their REST path matched itself, so under `grpc-direct` they are
served where native answers the direct response (README, "Known limits").
"""

from __future__ import annotations

import pytest

from checks import JSON, assert_own_error, describe
from harness import Envoy, with_defaults

HOST = "library.example.test"
OTHER = "evil.example.test"

ROUTE = """              - match: { prefix: "/" }
                route:
                  cluster: grpc_backend"""

EDITS = {
    "host": lambda text: text.replace('domains: ["*"]', f'domains: ["{HOST}"]', 1),
    "grpc-direct": lambda text: text.replace(ROUTE, """              - match: { prefix: "/bookstore.v1.Bookstore/" }
                direct_response: { status: 200, body: { inline_string: "not here" } }
""" + ROUTE, 1),
    "grpc-redirect": lambda text: text.replace(ROUTE, """              - match: { prefix: "/bookstore.v1.Bookstore/" }
                redirect: { host_redirect: "elsewhere.example.test" }
""" + ROUTE, 1),
}

# (method, path, body): unary and streaming calls, with and without a body.
CALLS = {
    "GET": ("GET", "/v1/shelves/1", None),
    "POST": ("POST", "/v1/shelves", {"theme": "x"}),
    "server stream POST": ("POST", "/v1/shelves/1/books:stream", {"count": 2}),
    "server stream GET": ("GET", "/v1/shelves/1/books:stream?count=2", None),
    "client stream": ("POST", "/v1/shelves/1/books:batchCreate", [{"title": "a"}, {"title": "b"}]),
}


@pytest.fixture(scope="module")
def envoys(e2e_dir, example_service, filter_flavour):
    started: dict[tuple[str, str], Envoy] = {}

    def get(flavour: str, edit: str, companion: bool = True) -> Envoy:
        flavour = filter_flavour if flavour == "wasm" else flavour  # our filter, the build under test
        key = (flavour, edit, companion)
        if key not in started:
            workdir = e2e_dir / f"envoy-unrouted-{edit}-{flavour}{'' if companion else '-alone'}"
            options = None if companion else with_defaults(lua_companion=False)
            started[key] = Envoy(flavour, options, example_service, workdir, edit_config=EDITS[edit]).start()
        return started[key]

    yield get
    for envoy in started.values():
        envoy.stop()


def assert_not_found(r, method: str, path: str, host: str) -> None:
    status = assert_own_error(r, 404, 5, "no route serves", f"{method} {path}", f'"{host}"')
    assert "route_not_found" not in status["message"], status


@pytest.mark.parametrize("call", list(CALLS))
def test_no_virtual_host_for_the_host(envoys, call):
    method, path, body = CALLS[call]
    wasm = envoys("wasm", "host").request(method, path, headers={"host": OTHER}, body=body)
    assert_not_found(wasm, method, path, OTHER)
    native = envoys("native", "host").request(method, path, headers={"host": OTHER}, body=body)
    assert native.status_code == 404, describe(native)
    # The right host is served as usual.
    ok = envoys("wasm", "host").request(method, path, headers={"host": HOST}, body=body)
    assert ok.status_code == 200 and ok.headers["content-type"].startswith(JSON), describe(ok)


@pytest.mark.parametrize("edit", ["grpc-direct", "grpc-redirect"])
@pytest.mark.parametrize("call", [c for c, (_, _, body) in CALLS.items() if body is not None])
def test_a_gRPC_path_without_a_cluster(envoys, edit, call):
    method, path, body = CALLS[call]
    wasm = envoys("wasm", edit).request(method, path, headers={"host": HOST}, body=body)
    assert_not_found(wasm, method, path, HOST)
    native = envoys("native", edit).request(method, path, headers={"host": HOST}, body=body)
    # Native passes on what the route answered: the direct response or the redirect.
    assert native.status_code in (200, 301), describe(native)


@pytest.mark.parametrize("call", [c for c, (_, _, body) in CALLS.items() if body is None])
def test_without_a_body_the_grpc_route_decides(envoys, call):
    """A call without a body is routed again on its gRPC path, as native routes it: the
    module appends its frame, the Wasm build's companion gives it its frame."""
    method, path, body = CALLS[call]
    ours = envoys("wasm", "grpc-direct").request(method, path, headers={"host": HOST})
    assert_not_found(ours, method, path, HOST)
    native = envoys("native", "grpc-direct").request(method, path, headers={"host": HOST})
    assert (native.status_code, native.content) == (200, b"not here"), describe(native)


@pytest.mark.parametrize("call", [c for c, (_, _, body) in CALLS.items() if body is None])
def test_without_the_companion_the_rest_route_decides(envoys, call, filter_flavour):
    """Known limit of the Wasm build without its companion: it calls the cluster of the
    REST path's route itself, so the call is served although its gRPC path has a
    direct-response route. The module has no companion and needs none."""
    if filter_flavour != "wasm":
        pytest.skip("lua_companion is a setting of the Wasm build")
    method, path, body = CALLS[call]
    alone = envoys("wasm", "grpc-direct", companion=False).request(method, path, headers={"host": HOST})
    assert alone.status_code == 200 and alone.headers["content-type"].startswith(JSON), describe(alone)
