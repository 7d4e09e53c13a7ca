"""rgp's outputs read by real third-party tools: the OpenAPI document by
openapi-spec-validator, the publish YAML by PyYAML. Run by `make test-cli`,
which passes the binary as RGP (else target/debug/rgp)."""

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

ROOT = Path(__file__).resolve().parents[2]
RGP = os.environ.get("RGP", str(ROOT / "target" / "debug" / "rgp"))


def rgp(*args):
    return subprocess.run([RGP, *map(str, args)], cwd=ROOT, capture_output=True, text=True, check=True)


@pytest.fixture(scope="module")
def example_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("rgp") / "set.pb"
    rgp("build", "-I", "descriptors", "bookstore/v1/bookstore.proto", "echo/v1/echo.proto", "-o", out)
    return out


@pytest.mark.parametrize("extra", [[], ["--proto-names"], ["--services", "echo.v1.EchoService"]])
def test_openapi_validates(example_set, tmp_path, extra):
    out = tmp_path / "openapi.json"
    rgp("openapi", example_set, "-o", out, *extra)
    spec, _ = read_from_filename(str(out))
    validate(spec)  # raises on any violation of the OpenAPI 3.0 schema and rules
    assert spec["openapi"] == "3.0.3"


def test_publish_outputs_parse(example_set, tmp_path):
    rgp("publish", example_set, "--name", "bookstore-api", "--namespace", "shop",
        "--config", "envoy/transcoder-options.json", "-o", tmp_path)
    pb = (tmp_path / "bookstore-api.pb").read_bytes()
    sha = hashlib.sha256(pb).hexdigest()
    assert (tmp_path / "bookstore-api.pb.sha256").read_text() == f"{sha}  bookstore-api.pb\n"

    cm = yaml.safe_load((tmp_path / "bookstore-api.configmap.yaml").read_text())
    assert cm["apiVersion"] == "v1" and cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == "bookstore-api" and cm["metadata"]["namespace"] == "shop"
    assert cm["metadata"]["annotations"]["rust-grpc-proxy/descriptor-sha256"] == sha
    assert base64.b64decode(cm["binaryData"]["bookstore-api.pb"]) == pb

    config = json.loads((tmp_path / "bookstore-api.filter.json").read_text())
    assert base64.b64decode(config["proto_descriptor_bin"]) == pb
    assert config["services"] == ["bookstore.v1.Bookstore", "echo.v1.EchoService"]
    assert config["convert_grpc_status"] is True

    snippet = yaml.safe_load((tmp_path / "bookstore-api.envoy.yaml").read_text())
    filters = snippet["http_filters"]
    # The Lua companion right after the Wasm filter, with the repository's script verbatim.
    assert [f["name"] for f in filters] == ["envoy.filters.http.wasm", "envoy.filters.http.lua",
                                            "envoy.filters.http.router"]
    # It runs only for requests with the Wasm filter's marker (envoy/companion-gate.json).
    wrapper = filters[1]["typed_config"]
    assert wrapper["@type"] == "type.googleapis.com/envoy.extensions.common.matching.v3.ExtensionWithMatcher"
    (matcher,) = wrapper["xds_matcher"]["matcher_list"]["matchers"]
    gate = json.loads((ROOT / "envoy" / "companion-gate.json").read_text())
    assert matcher["predicate"] == {"not_matcher": gate}
    assert matcher["on_match"]["action"]["name"] == "skip"
    lua = wrapper["extension_config"]["typed_config"]
    assert lua["@type"] == "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
    assert lua["default_source_code"]["inline_string"] == (ROOT / "envoy" / "companion.lua").read_text()
    assert config["lua_companion"] is True
    wasm = filters[0]["typed_config"]["config"]
    assert wasm["allow_on_headers_stop_iteration"] is True
    assert wasm["configuration"]["@type"] == "type.googleapis.com/google.protobuf.StringValue"
    assert json.loads(wasm["configuration"]["value"]) == config
    assert wasm["vm_config"]["code"]["local"]["filename"] == "/etc/envoy/rust_grpc_proxy.wasm"
