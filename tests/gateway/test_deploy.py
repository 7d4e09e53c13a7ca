"""deploy/ for gateway mode and Istio:

- deploy/gateway/*.yaml strictly valid Kubernetes objects (kubernetes-validate, every
  version from 1.29), and consistent with envoy/gateway/gateway.yaml (ports, the config
  and certificate paths, the module's path in the image);
- deploy/istio/*.yaml valid against Istio's CRD schemas (Istio 1.29.2's, compiled by the
  npm package @kubernetes-models/istio, pinned in tests/gateway/istio/package.json; its
  validators check types, enums and required fields but let unknown fields through, so
  every key outside the opaque Envoy `value`s is also checked against the schema's names);
- the EnvoyFilter's patches run in a real Envoy the way Istio delivers them (the filter
  by ECDS), with the module as a local file instead of istio-agent's download;
- WasmPlugin still has no field for allow_on_headers_stop_iteration (why an EnvoyFilter).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions, major_minor

import harness
from gateway import REPO, Gateway

DEPLOY = REPO / "deploy"
ISTIO_DIR = REPO / "tests" / "gateway" / "istio"
SCHEMAS = ISTIO_DIR / "node_modules" / "@kubernetes-models" / "istio" / "_schemas"
SCHEMA_FILES = {
    ("networking.istio.io/v1alpha3", "EnvoyFilter"): "NetworkingIstioIoV1alpha3EnvoyFilter.js",
    ("extensions.istio.io/v1alpha1", "WasmPlugin"): "ExtensionsIstioIoV1alpha1WasmPlugin.js",
}
VERSIONS = sorted({major_minor(v) for v in all_versions()}, key=lambda v: tuple(map(int, v.split("."))))
SUPPORTED = [v for v in VERSIONS if tuple(map(int, v.split("."))) >= (1, 29)]


def documents(folder: Path) -> list:
    out = []
    for path in sorted(folder.glob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc:
                out.append(pytest.param(doc, id=f"{path.name}#{i}:{doc['kind']}"))
    return out


# ----------------------------------------------------------------- Kubernetes

@pytest.mark.parametrize("doc", documents(DEPLOY / "gateway"))
def test_gateway_manifests_are_strictly_valid(doc):
    assert SUPPORTED, VERSIONS
    for version in SUPPORTED:
        kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_catches_a_typo():
    deployment = next(d.values[0] for d in documents(DEPLOY / "gateway") if d.values[0]["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []  # not volumeMounts
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, SUPPORTED[-1], strict=True)


def test_gateway_deployment_matches_its_description():
    desc = yaml.safe_load((REPO / "envoy/gateway/gateway.yaml").read_text())
    docs = [d.values[0] for d in documents(DEPLOY / "gateway")]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"https": desc["listen"]["port"], "health": desc["health"]["port"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # The config Envoy is started with is the ConfigMap's envoy.yaml.
    config_arg = container["args"][container["args"].index("-c") + 1]
    assert config_arg == mounts["config"] + "/envoy.yaml"
    assert volumes["config"]["configMap"]["items"] == [{"key": "envoy.yaml", "path": "envoy.yaml"}]
    # Every TLS file the description names is a key of the mounted Secret.
    secret_files = {mounts["tls"] + "/" + i["path"] for i in volumes["tls"]["secret"]["items"]}
    assert {desc["tls"]["cert"], desc["tls"]["key"], desc["tls"]["client_ca"]} == secret_files
    # Runtime native (the description's default): Envoy finds the module by name in the
    # directory the container's env names, where deploy/Dockerfile's sidecar image puts it.
    assert "runtime" not in desc and "wasm" not in desc
    env = {e["name"]: e["value"] for e in container["env"]}
    module = env["ENVOY_DYNAMIC_MODULES_SEARCH_PATH"] + "/librust_grpc_proxy.so"
    assert f"{module}\n" in (DEPLOY / "Dockerfile").read_text().replace(" ", "\n") + "\n"
    service = next(d for d in docs if d["kind"] == "Service")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["https"]


# ----------------------------------------------------------------- Istio

def _istio_validate(docs: list[dict]) -> list[dict]:
    if shutil.which("node") is None or not SCHEMAS.is_dir():
        pytest.fail("Istio schemas missing: run `make test-gateway` (npm ci in tests/gateway/istio)", pytrace=False)
    proc = subprocess.run(["node", str(ISTIO_DIR / "validate.mjs")], input=json.dumps(docs),
                          capture_output=True, text=True, timeout=60, cwd=ISTIO_DIR)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _schema_names(doc: dict) -> set[str]:
    text = (SCHEMAS / SCHEMA_FILES[(doc["apiVersion"], doc["kind"])]).read_text()
    return set(re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"', text))


def _keys_outside_values(node, path="") -> list[tuple[str, str]]:
    """(path, key) of every mapping key, except inside a patch's `value` (Envoy config,
    opaque to Istio's schema) and inside labels (free-form)."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((path, k))
            if k in ("value", "labels", "matchLabels", "annotations") and path.endswith(("patch", "metadata",
                                                                                         "workloadSelector", "selector")):
                continue
            out.extend(_keys_outside_values(v, f"{path}.{k}"))
    elif isinstance(node, list):
        for item in node:
            out.extend(_keys_outside_values(item, path))
    return out


ISTIO_DOCS = documents(DEPLOY / "istio")


def test_there_are_istio_resources():
    kinds = {d.values[0]["kind"] for d in ISTIO_DOCS}
    assert "EnvoyFilter" in kinds, kinds


@pytest.mark.parametrize("doc", ISTIO_DOCS)
def test_istio_resources_match_istio_crd_schemas(doc):
    assert _istio_validate([doc]) == [{"ok": True}]
    names = _schema_names(doc)
    unknown = [f"{p}.{k}" for p, k in _keys_outside_values(doc["spec"], "spec") if k not in names]
    assert not unknown, f"keys that Istio's {doc['kind']} schema does not have: {unknown}"


def test_istio_validation_rejects_a_wrong_enum():
    doc = copy.deepcopy(next(d.values[0] for d in ISTIO_DOCS if d.values[0]["kind"] == "EnvoyFilter"))
    doc["spec"]["configPatches"][0]["patch"]["operation"] = "MERGE_PLEASE"
    result = _istio_validate([doc])[0]
    assert not result["ok"] and "operation" in result["errors"][0], result


def test_wasmplugin_still_cannot_set_allow_on_headers_stop_iteration():
    # If this fails, Istio's WasmPlugin gained the setting: a WasmPlugin can then replace
    # the EnvoyFilter (docs/gateway.md, "Istio").
    names = _schema_names({"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin"})
    assert "pluginConfig" in names and "vmConfig" in names, "not the WasmPlugin schema?"
    assert not {n for n in names if "stop" in n.lower() or "iteration" in n.lower()}


def test_envoyfilter_patches_run_in_envoy_by_ecds(example_service, out_dir):
    """Envoy gets the EXTENSION_CONFIG patch by ECDS (from a file, as istio-agent would
    hand it over after fetching the module), the first HTTP_FILTER patch in front of the
    router of an inbound-like listener and the second (the Lua companion) right after it,
    in the same context and workloads: REST is transcoded to the example service, and a
    GET goes through the router."""
    doc = next(d.values[0] for d in ISTIO_DOCS if d.values[0]["kind"] == "EnvoyFilter")
    config_patches = doc["spec"]["configPatches"]
    assert [p["applyTo"] for p in config_patches] == ["EXTENSION_CONFIG", "HTTP_FILTER", "HTTP_FILTER"]
    patches = {p["applyTo"]: p["patch"] for p in config_patches[:2]}
    assert patches["EXTENSION_CONFIG"]["operation"] == "ADD"
    assert patches["HTTP_FILTER"]["operation"] == "INSERT_BEFORE"
    companion = config_patches[2]
    assert companion["patch"]["operation"] == "INSERT_AFTER"
    assert companion["match"]["context"] == config_patches[1]["match"]["context"]
    assert companion["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"] == \
        patches["HTTP_FILTER"]["value"]["name"]
    lua_filter = companion["patch"]["value"]
    assert lua_filter["typed_config"]["default_source_code"]["inline_string"] == \
        (REPO / "envoy" / "companion.lua").read_text()
    extension = copy.deepcopy(patches["EXTENSION_CONFIG"]["value"])
    plugin = extension["typed_config"]["config"]
    assert plugin["allow_on_headers_stop_iteration"] is True
    assert json.loads(plugin["configuration"]["value"])["lua_companion"] is True
    assert plugin["vm_config"]["code"]["remote"]["http_uri"]["uri"].startswith("oci://")
    plugin["vm_config"]["code"] = {"local": {"filename": str(harness.WASM_PATH)}}  # istio-agent's rewrite
    workdir = out_dir / "istio-ecds"
    workdir.mkdir(parents=True, exist_ok=True)
    ecds = workdir / "ecds.json"
    ecds.write_text(json.dumps({"resources": [
        {"@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig", **extension}]}))
    http_filter = copy.deepcopy(patches["HTTP_FILTER"]["value"])
    assert http_filter["name"] == extension["name"]
    http_filter["config_discovery"]["config_source"] = {"path_config_source": {"path": str(ecds)}}
    config = {
        "node": {"id": "sidecar~127.0.0.1~bookstore.default~default.svc.cluster.local", "cluster": "bookstore.default"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "inbound",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "inbound",
                        "route_config": {"virtual_hosts": [{"name": "inbound", "domains": ["*"], "routes": [
                            {"match": {"prefix": "/"}, "route": {"cluster": "inbound|50051||"}}]}]},
                        "http_filters": [http_filter, lua_filter, {
                            "name": "envoy.filters.http.router",
                            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                    }}]}],
            }],
            "clusters": [{
                "name": "inbound|50051||", "type": "STATIC", "connect_timeout": "2s",
                "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}}}},
                "load_assignment": {"cluster_name": "inbound|50051||", "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": example_service.port}}}}]}]},
            }],
        },
    }
    gw = Gateway("istio-ecds", {}, workdir / "envoy", listener="inbound", config=config).start()
    try:
        status, body = gw.json("POST", "/v1/shelves", {"theme": "Meshes"})
        assert status == 200 and body["theme"] == "Meshes", body
        routed = gw.stat("http.inbound.rq_total")
        status, body = gw.json("GET", "/api/v1/echo/mesh/get")
        assert status == 200 and "request=mesh" in body["response"], body
        assert gw.stat("http.inbound.rq_total") == routed + 1, "the GET went through the router"
        reloads = {k: v for k, v in gw.stats().items()
                   if k.startswith("extension_config_discovery.") and k.endswith(".config_reload")}
        assert reloads and all(v >= 1 for v in reloads.values()), reloads  # it came by ECDS
        assert not gw.wasm_failures()
    finally:
        gw.stop()
