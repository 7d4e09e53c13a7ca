"""`rgp build` against protoc (grpcio-tools' `python -m grpc_tools.protoc`, pinned in
requirements.txt, so no Debian protoc is needed): on the project's protos and on the
third-party protos googleapis-common-protos ships (google/api, google/rpc, google/type,
google/longrunning, ...), the same files in the same order with the same messages,
fields, services and options; `rgp check` lists the same routes for both sets and
`rgp diff` finds no change between them. Run by `make test-cli`.

Known, checked differences, all outside the user's protos:
- google/protobuf/{descriptor,api}.proto: protox bundles an older release of these
  well-known types than grpcio-tools (it cannot parse the newest descriptor.proto);
  every message, field and enum value of protox's copy is in protoc's, with the same
  number, name and type, or is reserved there (FileOptions.php_generic_services was
  removed since, Utf8Validation.NONE renumbered); protoc's has newer fields and options on top.
- `rpc M(A) returns (B) {}`: protoc writes an empty MethodOptions, protox writes none.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

# Register the extensions the protos use, so options are compared as parsed values.
import google.api.annotations_pb2  # noqa: F401
import google.api.client_pb2  # noqa: F401
import google.api.field_behavior_pb2  # noqa: F401
import google.api.resource_pb2  # noqa: F401
import google.longrunning.operations_proto_pb2  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
RGP = os.environ.get("RGP", str(ROOT / "target" / "debug" / "rgp"))
# Where googleapis-common-protos installed its .proto files (next to the generated _pb2 modules).
GOOGLEAPIS = Path(google.api.annotations_pb2.__file__).resolve().parents[2]
OLDER_WKT = {"google/protobuf/descriptor.proto", "google/protobuf/api.proto"}


def run(*args, cwd=ROOT):
    return subprocess.run([*map(str, args)], cwd=cwd, capture_output=True, text=True)


def rgp(*args):
    return run(RGP, *args)


def protoc(include: Path, files, out: Path):
    r = run(sys.executable, "-m", "grpc_tools.protoc", f"-I{include}", "--include_imports",
            f"--descriptor_set_out={out}", *files)
    assert r.returncode == 0, r.stderr
    return out


def load(path: Path) -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())


def without_empty_method_options(f: descriptor_pb2.FileDescriptorProto):
    f = descriptor_pb2.FileDescriptorProto.FromString(f.SerializeToString())
    for service in f.service:
        for method in service.method:
            if method.HasField("options") and method.options.ByteSize() == 0:
                method.ClearField("options")
    return f


def assert_older_copy(ours: descriptor_pb2.FileDescriptorProto, theirs: descriptor_pb2.FileDescriptorProto):
    """Every message, field and enum value of ours is in theirs (options aside)."""
    def messages(file):
        out = {}

        def walk(msg, prefix):
            name = f"{prefix}.{msg.name}"
            out[name] = msg
            for nested in msg.nested_type:
                walk(nested, name)
        for msg in file.message_type:
            walk(msg, file.package)
        return out

    def enums(file):
        out = {f"{file.package}.{e.name}": e for e in file.enum_type}
        for name, msg in messages(file).items():
            out.update({f"{name}.{e.name}": e for e in msg.enum_type})
        return out

    theirs_messages = messages(theirs)
    for name, msg in messages(ours).items():
        assert name in theirs_messages, name
        fields = {f.number: f for f in theirs_messages[name].field}
        for field in msg.field:
            if field.number not in fields:  # removed upstream since (php_generic_services): reserved there
                assert any(r.start <= field.number < r.end for r in theirs_messages[name].reserved_range), \
                    f"{name}.{field.name}"
                continue
            other = descriptor_pb2.FieldDescriptorProto()
            other.CopyFrom(fields[field.number])
            mine = descriptor_pb2.FieldDescriptorProto()
            mine.CopyFrom(field)
            other.ClearField("options")
            mine.ClearField("options")
            assert mine == other, f"{name}.{field.name}"
    theirs_enums = enums(theirs)
    for name, enum in enums(ours).items():
        values = {(v.name, v.number) for v in theirs_enums[name].value}
        for v in enum.value:  # or the number is reserved there (FeatureSet.Utf8Validation.NONE moved 1 -> 3)
            assert (v.name, v.number) in values or any(
                r.start <= v.number <= r.end for r in theirs_enums[name].reserved_range), f"{name}.{v.name}"


def assert_same_set(ours_path: Path, theirs_path: Path):
    ours, theirs = load(ours_path), load(theirs_path)
    assert [f.name for f in ours.file] == [f.name for f in theirs.file]
    compared = 0
    for a, b in zip(ours.file, theirs.file):
        if a.name in OLDER_WKT:
            assert_older_copy(a, b)
            continue
        a, b = without_empty_method_options(a), without_empty_method_options(b)
        assert a == b, f"{a.name} differs:\n--- rgp\n{a}\n--- protoc\n{b}"
        compared += 1
    return compared


def assert_same_surface(ours: Path, theirs: Path, *services):
    extra = ["--services", ",".join(services)] if services else []
    a, b = rgp("check", ours, *extra), rgp("check", theirs, *extra)
    assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
    assert a.stdout and a.stdout == b.stdout
    d = rgp("diff", ours, theirs, *extra)
    assert d.returncode == 0 and d.stdout == "", d
    assert "0 breaking, 0 compatible change(s)" in d.stderr
    return a.stdout.splitlines()


def test_project_protos_match_protoc(tmp_path):
    files = ["bookstore/v1/bookstore.proto", "echo/v1/echo.proto"]
    ours = tmp_path / "rgp.pb"
    r = rgp("build", "-I", "descriptors", *files, "-o", ours)
    assert r.returncode == 0, r.stderr
    theirs = protoc(ROOT / "descriptors", files, tmp_path / "protoc.pb")
    compared = assert_same_set(ours, theirs)
    assert compared >= 10  # the project's files, google/api and the other well-known types
    routes = assert_same_surface(ours, theirs)
    assert "GET /v1/shelves -> bookstore.v1.Bookstore/ListShelves" in routes
    assert len(routes) >= 20


def test_builtin_google_api_protos_match_protoc(tmp_path):
    """Without google/api on the include path rgp uses its built-in copies; protoc gets
    googleapis-common-protos' copies and the result is the same HTTP surface."""
    src = tmp_path / "src" / "bookstore" / "v1"
    src.mkdir(parents=True)
    (src / "bookstore.proto").write_bytes((ROOT / "descriptors/bookstore/v1/bookstore.proto").read_bytes())
    ours = tmp_path / "rgp.pb"
    r = rgp("build", "-I", tmp_path / "src", "bookstore/v1/bookstore.proto", "-o", ours)
    assert r.returncode == 0, r.stderr
    r = run(sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp_path / 'src'}", f"-I{GOOGLEAPIS}",
            "--include_imports", f"--descriptor_set_out={tmp_path / 'protoc.pb'}", "bookstore/v1/bookstore.proto")
    assert r.returncode == 0, r.stderr
    assert_same_surface(ours, tmp_path / "protoc.pb")


def googleapis_protos():
    return sorted(p.relative_to(GOOGLEAPIS).as_posix() for p in (GOOGLEAPIS / "google").rglob("*.proto"))


def test_googleapis_common_protos_match_protoc(tmp_path):
    """Every .proto of googleapis-common-protos (not written here) in one set."""
    files = googleapis_protos()
    assert len(files) >= 50 and "google/type/money.proto" in files and "google/rpc/status.proto" in files
    ours = tmp_path / "rgp.pb"
    r = rgp("build", "-I", GOOGLEAPIS, *files, "-o", ours)
    assert r.returncode == 0, r.stderr
    theirs = protoc(GOOGLEAPIS, files, tmp_path / "protoc.pb")
    assert assert_same_set(ours, theirs) >= len(files)
    routes = assert_same_surface(ours, theirs)
    assert "GET /v1/{name=operations/**} -> google.longrunning.Operations/GetOperation" in routes
    assert "GET /v1/{name=projects/*/locations/*} -> google.cloud.location.Locations/GetLocation" in routes
    # Reproducible on a set of this size too.
    again = tmp_path / "again.pb"
    assert rgp("build", "-I", GOOGLEAPIS, *reversed(files), "-o", again).returncode == 0
    assert again.read_bytes() == ours.read_bytes()


@pytest.mark.parametrize("service", ["google.longrunning.Operations", "google.cloud.location.Locations"])
def test_googleapis_services_publish_and_describe(tmp_path, service):
    """The third-party services go through publish and openapi like our own."""
    files = googleapis_protos()
    ours = tmp_path / "rgp.pb"
    assert rgp("build", "-I", GOOGLEAPIS, *files, "-o", ours).returncode == 0
    r = rgp("publish", ours, "--name", "googleapis", "--services", service, "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    from openapi_spec_validator import validate
    import json
    r = rgp("openapi", ours, "--services", service, "-o", tmp_path / "openapi.json")
    assert r.returncode == 0, r.stderr
    validate(json.loads((tmp_path / "openapi.json").read_text()))
