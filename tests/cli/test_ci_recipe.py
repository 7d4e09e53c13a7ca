"""The CI recipe users copy (docs/ci/descriptors.yml) runs green: its bash steps, run
as GitHub runs them (ci_recipe.py), on an API that is first published, then changed
compatibly, then broken (refused, then allowed); and on the project's own descriptors/,
whose committed published set (descriptors/published, written by `make
publish-descriptors`) must be exactly what the recipe produces from the committed protos.
Run by `make test-cli` (RGP = the rgp binary)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import ci_recipe

ROOT = ci_recipe.ROOT
SHOP = ROOT / "src" / "cli" / "tests" / "fixtures" / "diff"


def steps_ran(results):
    return [(name, r.returncode) for name, r in results]


def output(results):
    return "\n".join(f"--- {n} ({r.returncode})\n{r.stdout}{r.stderr}" for n, r in results)


@pytest.fixture
def project(tmp_path):
    """A user's repository laid out as the workflow's env says, with the 'old' shop API."""
    repo = tmp_path / "repo"
    (repo / "proto" / "shop" / "v1").mkdir(parents=True)
    shutil.copy(SHOP / "old" / "shop" / "v1" / "shop.proto", repo / "proto" / "shop" / "v1" / "shop.proto")
    (repo / "filter-options.json").write_text(json.dumps(
        {"services": ["shop.v1.Shop"], "convert_grpc_status": True, "print_options": {"add_whitespace": True}}))
    return repo


def run(repo, tmp_path, **env):
    temp = tmp_path / f"runner-temp-{len(list(tmp_path.glob('runner-temp-*')))}"
    temp.mkdir()
    return ci_recipe.run_steps(env=env, cwd=repo, runner_temp=temp)


def test_workflow_is_a_complete_github_actions_job():
    doc = yaml.safe_load(ci_recipe.WORKFLOW.read_text())
    triggers = doc[True]  # YAML 1.1 reads the key `on` as true
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    env, steps = ci_recipe.workflow()
    assert {"PROTO_DIR", "PROTOS", "NAME", "NAMESPACE", "FILTER_OPTIONS", "PUBLISHED", "ALLOW_BREAKING"} <= set(env)
    assert list(steps) == ["install rgp", *ci_recipe.STEPS, "commit"]
    # Publishing happens on main only; a PR builds, checks, diffs and writes the OpenAPI document.
    for name in ("publish", "commit"):
        assert steps[name]["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    for name in ("build", "check", "diff", "openapi"):
        assert "if" not in steps[name]


def test_workflow_validates_against_the_github_workflow_schema(tmp_path):
    """check-jsonschema's vendored copy of the GitHub Actions workflow schema (no network)."""
    checker = Path(sys.executable).parent / "check-jsonschema"
    r = subprocess.run([str(checker), "--builtin-schema", "vendor.github-workflows", str(ci_recipe.WORKFLOW)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # And it catches a broken one (so the check is real).
    doc = yaml.safe_load(ci_recipe.WORKFLOW.read_text())
    doc["jobs"]["descriptors"]["steps"][1]["runs"] = doc["jobs"]["descriptors"]["steps"][1].pop("run")
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump({"on": doc[True], **{k: v for k, v in doc.items() if k is not True}}))
    r = subprocess.run([str(checker), "--builtin-schema", "vendor.github-workflows", str(broken)],
                       capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr


def test_first_publication_then_compatible_then_breaking(project, tmp_path):
    published = project / "published"

    # 1. Nothing published yet: the diff step says so and everything is published.
    results = run(project, tmp_path)
    assert steps_ran(results) == [(s, 0) for s in ci_recipe.STEPS], output(results)
    assert "first publication" in dict(results)["diff"].stdout
    files = sorted(p.name for p in published.iterdir())
    assert files == ["shop-api.configmap.yaml", "shop-api.envoy.yaml", "shop-api.filter.json",
                     "shop-api.openapi.json", "shop-api.pb", "shop-api.pb.sha256"]
    first = (published / "shop-api.pb").read_bytes()
    config = json.loads((published / "shop-api.filter.json").read_text())
    assert config["services"] == ["shop.v1.Shop"] and config["print_options"] == {"add_whitespace": True}

    # 2. Unchanged protos: the same bytes again.
    results = run(project, tmp_path)
    assert steps_ran(results) == [(s, 0) for s in ci_recipe.STEPS], output(results)
    assert (published / "shop-api.pb").read_bytes() == first

    # 3. A compatible change (a new method and route): reported, published.
    proto = project / "proto" / "shop" / "v1" / "shop.proto"
    proto.write_text(proto.read_text().replace(
        "service Shop {",
        'service Shop {\n  rpc CountItems(ListItemsRequest) returns (ListItemsResponse) {\n'
        '    option (google.api.http) = { get: "/v1/items:count" };\n  }', 1))
    results = run(project, tmp_path)
    assert steps_ran(results) == [(s, 0) for s in ci_recipe.STEPS], output(results)
    assert "compatible: route added: GET /v1/items:count -> shop.v1.Shop/CountItems" in dict(results)["diff"].stdout
    second = (published / "shop-api.pb").read_bytes()
    assert second != first
    assert "/v1/items:count" in json.loads((published / "shop-api.openapi.json").read_text())["paths"]

    # 4. A breaking change: the diff step fails (exit 1), nothing is published.
    shutil.copy(SHOP / "new" / "shop" / "v1" / "shop.proto", proto)
    results = run(project, tmp_path)
    assert steps_ran(results) == [("build", 0), ("check", 0), ("diff", 1)], output(results)
    diff = dict(results)["diff"].stdout
    assert "breaking: route removed: GET /v1/items -> shop.v1.Shop/ListItems" in diff
    assert (published / "shop-api.pb").read_bytes() == second

    # 5. The same change, allowed (PR label / commit message): published.
    results = run(project, tmp_path, ALLOW_BREAKING="true")
    assert steps_ran(results) == [(s, 0) for s in ci_recipe.STEPS], output(results)
    assert (published / "shop-api.pb").read_bytes() != second


def test_a_broken_route_stops_the_recipe_at_check(project, tmp_path):
    proto = project / "proto" / "shop" / "v1" / "shop.proto"
    proto.write_text(proto.read_text().replace('get: "/v1/items/{id}"', 'get: "/v1/items/{idd}"'))
    results = run(project, tmp_path)
    assert steps_ran(results) == [("build", 0), ("check", 1)], output(results)
    assert 'path variable "idd": no field "idd"' in dict(results)["check"].stderr
    assert not (project / "published").exists()


def test_a_proto_that_does_not_compile_stops_the_recipe_at_build(project, tmp_path):
    proto = project / "proto" / "shop" / "v1" / "shop.proto"
    proto.write_text(proto.read_text().replace("string id = 1;", "string id = ;", 1))
    results = run(project, tmp_path)
    assert steps_ran(results) == [("build", 2)], output(results)
    assert "shop/v1/shop.proto:" in dict(results)["build"].stderr


def test_committed_descriptor_set_is_what_the_recipe_builds(tmp_path):
    """The project's own CI does the same for descriptors/: rebuilt from the committed
    protos, checked, diffed against descriptors/published (no change at all) and
    published again, every file equals the committed one byte for byte."""
    committed = ROOT / ci_recipe.PROJECT_ENV["PUBLISHED"]
    assert committed.is_dir(), "descriptors/published is missing: run `make publish-descriptors`"
    copy = tmp_path / "published"
    shutil.copytree(committed, copy)
    env = dict(ci_recipe.PROJECT_ENV, PUBLISHED=str(copy))
    results = ci_recipe.run_steps(env=env, cwd=ROOT, runner_temp=tmp_path)
    hint = ("\ndescriptors/ no longer builds to descriptors/published: run `make publish-descriptors` "
            "(ALLOW_BREAKING=true to accept breaking changes) and commit descriptors/published\n")
    assert steps_ran(results) == [(s, 0) for s in ci_recipe.STEPS], hint + output(results)
    assert "0 breaking, 0 compatible change(s)" in dict(results)["diff"].stderr, hint + output(results)
    names = sorted(p.name for p in committed.iterdir())
    assert names == sorted(p.name for p in copy.iterdir())
    for name in names:
        assert (copy / name).read_bytes() == (committed / name).read_bytes(), hint + name
