"""Per-route configuration of the dynamic module (Envoy 1.40's DynamicModuleFilterPerRoute
under a route's typed_per_filter_config), which the Wasm build has no counterpart for.

A route with its own configuration is served with that configuration's transcoder, a route
without one with the filter's; a filter configured `{}` passes through everything but the
routes that have their own. Per-route configurations that cannot be served (bad JSON, a
set fetched at run time) are refused, and Envoy refuses the route configuration with them."""

from __future__ import annotations

import json
import re

import pytest

import harness
import render

# The filter's name in envoy/transcoder-dynmod.yaml: typed_per_filter_config is keyed by it.
FILTER_NAME = "envoy.filters.http.dynamic_modules"
PER_ROUTE_TYPE = "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilterPerRoute"
CATCH_ALL = '              - match: { prefix: "/" }\n'
VHOST_DOMAINS = '              domains: ["*"]\n'
# The filter's own configuration in the template (comment lines may sit above `value:`).
FILTER_LEVEL_VALUE = re.compile(
    r'(filter_name: rust_grpc_proxy\n\s+filter_config:\n\s+"@type": \S+\n(?:\s+#[^\n]*\n)*\s+value: )[^\n]+')


def route_config(**overrides) -> str:
    """A per-route configuration JSON: the default options with the set inline, overridden."""
    config = render.transcoder_config("dynmod", harness.with_defaults(), harness.DESCRIPTORS)
    config.update(overrides)
    return json.dumps({k: v for k, v in config.items() if v is not None})


def per_filter(route_json: str, indent: str) -> str:
    """A typed_per_filter_config entry (YAML lines at `indent`) with `route_json` for the filter."""
    lines = [
        "typed_per_filter_config:",
        f"  {FILTER_NAME}:",
        f'    "@type": {PER_ROUTE_TYPE}',
        "    dynamic_module_config: { name: rust_grpc_proxy }",
        # filter_name: Envoy 1.40 logs per_route_config_name (the older name) as deprecated.
        "    filter_name: rust_grpc_proxy",
        "    filter_config:",
        '      "@type": type.googleapis.com/google.protobuf.StringValue',
        f"      value: {json.dumps(route_json)}",
    ]
    return "".join(f"{indent}{line}\n" for line in lines)


def edit(route_json: str, prefix: str = "/v1/shelves/2", filter_level: str | None = None,
         virtual_host: str | None = None):
    """A config edit: a route for `prefix` with `route_json` as its own configuration, before
    the template's catch-all route; `filter_level` replaces the filter's own JSON and
    `virtual_host` is the virtual host's own configuration."""
    def apply(text: str) -> str:
        if filter_level is not None:
            text, n = FILTER_LEVEL_VALUE.subn(lambda m: m.group(1) + json.dumps(filter_level), text)
            assert n == 1, "the dynmod template's filter_config moved"
        if virtual_host is not None:
            assert VHOST_DOMAINS in text, "the dynmod template's virtual host moved"
            text = text.replace(VHOST_DOMAINS, VHOST_DOMAINS + per_filter(virtual_host, "              "), 1)
        route = (
            f'              - match: {{ prefix: "{prefix}" }}\n'
            f"                route: {{ cluster: grpc_backend, timeout: 15s }}\n"
            + per_filter(route_json, "                ")
        )
        assert CATCH_ALL in text, "the dynmod template's route moved"
        return text.replace(CATCH_ALL, route + CATCH_ALL, 1)
    return apply


@pytest.fixture
def start(e2e_dir, example_service):
    """start(name, edit) -> a started dynmod Envoy; every one is stopped after the test."""
    started = []

    def make(name: str, config_edit) -> harness.Envoy:
        envoy = harness.Envoy("dynmod", harness.with_defaults(), example_service, e2e_dir / f"per-route-{name}",
                              edit_config=config_edit, concurrency=2)
        started.append(envoy)
        return envoy.start()

    yield make
    for envoy in started:
        envoy.stop()


def test_each_route_gets_its_own_configuration(start):
    """/v1/shelves/2 has its own configuration (whitespace, default fields printed, proto
    names); /v1/shelves/1 has none and gets the filter's (compact, camelCase)."""
    pretty = route_config(print_options={"add_whitespace": True, "always_print_primitive_fields": True,
                                         "preserve_proto_field_names": True})
    envoy = start("two-routes", edit(pretty))
    assert "Deprecated field" not in envoy.log_text()
    plain = envoy.get("/v1/shelves/1")
    assert plain.status_code == 200 and plain.headers["content-type"] == "application/json", plain.text
    assert "\n" not in plain.text.strip() and plain.json()["id"] == "1", plain.text
    own = envoy.get("/v1/shelves/2")
    assert own.status_code == 200 and own.headers["content-type"] == "application/json", own.text
    assert own.text.startswith('{\n "id": "2",') and own.json() == {"id": "2", "theme": "Shelf 2"}, own.text
    # Both went through the router as gRPC calls (the route cache is cleared after the rewrite).
    envoy.wait_for_log(r'"POST /v1/shelves/1 HTTP/1\.1" 200 ')
    envoy.wait_for_log(r'"POST /v1/shelves/2 HTTP/1\.1" 200 ')
    # Requests that are not transcoded are untouched on either route; native gRPC passes.
    assert envoy.grpc("/bookstore.v1.Bookstore/GetShelf", b"\x08\x02").grpc_status == 0


def test_a_route_with_other_services_and_options(start):
    """A route's configuration may name other services and options: this one transcodes only
    echo.v1.EchoService and refuses unknown paths (404), while the filter's passes them on."""
    strict = route_config(services=["echo.v1.EchoService"],
                          request_validation_options={"reject_unknown_method": True})
    envoy = start("other-services", edit(strict, prefix="/v1/"))
    refused = envoy.get("/v1/shelves/1")
    assert refused.status_code == 404 and refused.json()["code"] == 5, refused.text
    assert "no method is bound to GET /v1/shelves/1" in refused.json()["message"]
    # Outside /v1/ the filter's own configuration applies: an unknown path goes upstream as is.
    upstream = envoy.get("/nope")
    assert upstream.headers.get("content-type") != "application/json", upstream.text


def test_the_most_specific_configuration_applies(start):
    """The virtual host's configuration (whitespace) serves the catch-all route, which has
    none of its own; /v1/shelves/2's own (proto field names, compact) wins over it."""
    vhost = route_config(print_options={"add_whitespace": True})
    own = route_config(print_options={"preserve_proto_field_names": True},
                       services=["bookstore.v1.Bookstore"])
    envoy = start("virtual-host", edit(own, prefix="/v1/shelves/2/books", virtual_host=vhost))
    pretty = envoy.get("/v1/shelves/1")
    assert pretty.status_code == 200 and pretty.text.startswith('{\n "id": "1",'), pretty.text
    compact = envoy.get("/v1/shelves/2/books")
    assert compact.status_code == 200 and "\n" not in compact.text.strip(), compact.text


def test_a_filter_configured_empty_serves_only_routes_with_their_own(start):
    envoy = start("empty-filter-level", edit(route_config(), filter_level="{}"))
    assert re.search(r"ready without a descriptor set of its own", envoy.log_text())
    own = envoy.get("/v1/shelves/2")
    assert own.status_code == 200 and own.json()["id"] == "2", own.text
    # No configuration for this route: the request reaches the gRPC server untranscoded.
    passed = envoy.get("/v1/shelves/1")
    assert passed.headers.get("content-type") != "application/json", (passed.status_code, passed.text)
    envoy.wait_for_log(r'"GET /v1/shelves/1 HTTP/1\.1" ')
    envoy.wait_for_log(r'"POST /v1/shelves/2 HTTP/1\.1" 200 ')


REFUSED = {
    "bad-json": ('{"services": [', r"per-route configuration refused: configuration field"),
    "descriptor-url": (
        json.dumps({"services": ["bookstore.v1.Bookstore"],
                    "descriptor_url": {"cluster": "grpc_backend", "url": "http://descriptors/set.pb"}}),
        r"per-route configuration refused: configuration field `descriptor_url`: a per-route configuration "
        r"cannot fetch its descriptor set",
    ),
    "descriptor-reflection": (
        route_config(descriptor_reflection={"cluster": "grpc_backend"}),
        r"per-route configuration refused: configuration field `descriptor_reflection`",
    ),
    "unknown-service": (route_config(services=["no.such.Service"]), r"per-route configuration refused: .*no\.such"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_bad_per_route_configuration_is_refused(start, case):
    route_json, message = REFUSED[case]
    with pytest.raises(harness.EnvoyStartError) as refused:
        start(f"refused-{case}", edit(route_json))
    assert re.search(message, refused.value.log), refused.value.log[-3000:]


def test_a_filter_level_configuration_without_a_set_names_the_per_route_form(start):
    with pytest.raises(harness.EnvoyStartError) as refused:
        start("filter-level-no-set", edit(route_config(), filter_level='{"services": ["bookstore.v1.Bookstore"]}'))
    assert re.search(r"configuration field `proto_descriptor_bin`: required .*a filter whose services are all "
                     r"configured per route takes `\{\}`", refused.value.log), refused.value.log[-3000:]
