"""Strict Kubernetes schema validation (kubernetes-validate) of what rgp-injector produces.

- Every patched pod of the golden tests (src/injector/tests/golden/*.pod.json, which
  `cargo test -p rgp-injector --test golden` checks byte for byte) against the strict
  schema of each supported Kubernetes version: native sidecars (an init container with
  restartPolicy: Always) from 1.29, when SidecarContainers went beta and on by default;
  the classic layout on every version the package has (1.25+).
- A native-sidecar pod must FAIL strict validation on 1.27, which has no
  Container.restartPolicy: proof that the validation is strict and that the layout
  really needs a newer cluster (the option native-sidecar: "false" exists for those).
- The pods of the test inputs, so the cases are real-shaped.
- Every manifest in deploy/ (recursively), except cert-manager's own kinds, which are
  not Kubernetes API types (listed in CRD_KINDS, checked for shape only).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
import kubernetes_validate
from kubernetes_validate.utils import all_versions, major_minor

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "src/injector/tests/golden"
CASES = ROOT / "src/injector/tests/cases"
DEPLOY = ROOT / "deploy"

VERSIONS = sorted({major_minor(v) for v in all_versions()}, key=lambda v: tuple(map(int, v.split("."))))
NATIVE_VERSIONS = [v for v in VERSIONS if tuple(map(int, v.split("."))) >= (1, 29)]
CRD_KINDS = {("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "Certificate")}
# Istio's kinds (deploy/istio): validated against Istio's CRD schemas in tests/gateway/test_deploy.py.
CRD_KINDS |= {("networking.istio.io/v1alpha3", "EnvoyFilter"), ("extensions.istio.io/v1alpha1", "WasmPlugin")}

GOLDEN_PODS = sorted(GOLDEN.glob("*.pod.json"))


def layout(pod: dict) -> str:
    return json.loads(pod["metadata"]["annotations"]["rust-grpc-proxy/status"])["layout"]


def validate(obj: dict, version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


def test_there_is_something_to_validate():
    assert len(GOLDEN_PODS) >= 10, "run the golden tests first (they write src/injector/tests/golden)"
    assert {layout(json.loads(p.read_text())) for p in GOLDEN_PODS} == {"native", "classic"}
    assert "1.29" in VERSIONS and "1.37" in VERSIONS, VERSIONS


@pytest.mark.parametrize("path", GOLDEN_PODS, ids=lambda p: p.name.removesuffix(".pod.json"))
def test_patched_pod_is_valid_on_supported_versions(path: Path):
    pod = json.loads(path.read_text())
    versions = NATIVE_VERSIONS if layout(pod) == "native" else VERSIONS
    for version in versions:
        validate(pod, version)


@pytest.mark.parametrize(
    "path", [p for p in GOLDEN_PODS if layout(json.loads(p.read_text())) == "native"],
    ids=lambda p: p.name.removesuffix(".pod.json"))
def test_native_sidecar_pod_is_refused_before_sidecar_containers(path: Path):
    pod = json.loads(path.read_text())
    with pytest.raises(kubernetes_validate.ValidationError) as err:
        validate(pod, "1.27")
    assert "restartPolicy" in str(err.value.message), err.value.message


def test_strictness_catches_a_typo():
    pod = json.loads(GOLDEN_PODS[0].read_text())
    sidecar = next(c for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]
                   if c["name"] == "rust-grpc-proxy")
    sidecar["securityContext"]["readOnlyRootFileSystem"] = True  # wrong case
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(pod, VERSIONS[-1])


# Reviews whose object is a pod meant to be valid (the malformed-* cases are broken on purpose).
INPUT_PODS = [p for p in sorted(CASES.glob("*.json")) if not p.stem.startswith("malformed")]


@pytest.mark.parametrize("path", INPUT_PODS, ids=lambda p: p.stem)
def test_case_input_pods_are_valid(path: Path):
    validate(json.loads(path.read_text())["request"]["object"], VERSIONS[-1])


def deploy_documents():
    docs = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc:
                docs.append(pytest.param(doc, id=f"{path.relative_to(DEPLOY)}#{i}:{doc.get('kind')}"))
    return docs


@pytest.mark.parametrize("doc", deploy_documents())
def test_deploy_manifest_is_valid(doc: dict):
    if (doc.get("apiVersion"), doc.get("kind")) in CRD_KINDS:
        assert doc["metadata"]["name"] and doc["spec"], doc
        return
    for version in NATIVE_VERSIONS:
        validate(doc, version)
