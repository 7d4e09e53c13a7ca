#!/usr/bin/env python3
"""Render envoy/transcoder-{wasm,dynmod,native}.yaml into a runnable Envoy config.

The templates hold ${NAME} placeholders; this fills them:

  LISTEN_ADDRESS, LISTEN_PORT   the HTTP listener (REST and native gRPC)
  ADMIN_ADDRESS, ADMIN_PORT     Envoy's admin interface
  BACKEND_HOST, BACKEND_PORT    the gRPC backend (cluster grpc_backend)
  BACKEND_DISCOVERY             STATIC for an IP address, STRICT_DNS for a name
  ROUTE_TIMEOUT                 the route's timeout (e.g. 15s)
  WASM_PATH                     (wasm) absolute path of rust_grpc_proxy.wasm
  WASM_PLUGIN_CONFIG            (wasm) the plugin's JSON configuration, as a YAML string
  FILTER_CONFIG                 (dynmod) the same JSON, for the dynamic module
  NATIVE_TRANSCODER_FIELDS      (native) the GrpcJsonTranscoder fields, one per line
  COMPANION_FILTER              (wasm) the Lua companion (envoy/companion.lua) right after the
                                Wasm filter, run only for requests with its marker
                                (envoy/companion-gate.json), unless "lua_companion": false

The transcoder options are a dict with the fields of Envoy's
envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder
(snake_case, as in its JSON/YAML form), without the descriptor: the default is
envoy/transcoder-options.json. The descriptor set is added as
`proto_descriptor_bin` (base64, inline) for both filters, unless the options
already carry `proto_descriptor`, `proto_descriptor_bin`, `descriptor_url` or
`descriptor_reflection`. The native flavour
gets the set without the HTTP rules Envoy's transcoder refuses at load (see
native_compatible_descriptor below).

Command line (prints the config to stdout unless --out is given):

  render.py --flavour wasm --descriptor build/descriptors.pb \\
      --wasm build/rust_grpc_proxy.wasm [--listen-port 8080] [--admin-port 9901] \\
      [--backend 127.0.0.1:50051] [--options FILE|JSON] [--out build/envoy-wasm.yaml]

As a module (tests/e2e uses it): render(flavour, descriptor=..., wasm=..., ...) -> str.
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import json
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATES = {
    "wasm": HERE / "transcoder-wasm.yaml",
    "native": HERE / "transcoder-native.yaml",
    "dynmod": HERE / "transcoder-dynmod.yaml",
}
DEFAULT_OPTIONS_FILE = HERE / "transcoder-options.json"
FLAVOURS = tuple(TEMPLATES)

_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def default_options() -> dict:
    """The transcoder options of the checked-in example (envoy/transcoder-options.json)."""
    return json.loads(DEFAULT_OPTIONS_FILE.read_text())


def _yaml_single_quoted(text: str) -> str:
    # ASCII-only JSON (json.dumps default) never holds line breaks or control
    # characters, so a single-quoted YAML scalar only needs ' doubled.
    return "'" + text.replace("'", "''") + "'"


# ---------------------------------------------------------------------------
# Native flavour: Envoy's grpc_json_transcoder refuses the whole config when a
# method's `response_body` names a field that is not a google.api.HttpBody
# ("Setting "response_body" is not supported yet for non-HttpBody fields"),
# and bookstore.v1.Bookstore.GetBookTitle does exactly that (grpc-gateway allows
# it, and so does our filter). So the native flavour gets a copy of the set in
# which such methods lose their google.api.http rule: they stay callable as
# native gRPC, they just have no REST route there. Done on the protobuf wire
# format, so no protobuf library is needed; untouched bytes are kept as they are.

_HTTP_RULE_EXT = 72295728  # google.api.http, extension of MethodOptions
_HTTP_BODY = ".google.api.HttpBody"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _fields(buf: bytes) -> list[tuple[int, int, object, bytes]]:
    """(field number, wire type, value, raw bytes of the whole field) of a message."""
    out, i = [], 0
    while i < len(buf):
        start = i
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, i = _varint(buf, i)
        elif wt == 1:
            val, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = _varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wt == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wt} in descriptor set")
        out.append((num, wt, val, buf[start:i]))
    return out


def _ld(num: int, payload: bytes) -> bytes:
    return _enc_varint(num << 3 | 2) + _enc_varint(len(payload)) + payload


def _str(fields, num: int) -> str:
    return next((v.decode() for n, wt, v, _ in fields if n == num and wt == 2), "")


def _message_field_types(files: list[bytes]) -> dict[str, dict[str, str]]:
    """Full message name (with leading dot) -> {field name: type_name}."""
    types: dict[str, dict[str, str]] = {}

    def walk(msg: bytes, prefix: str) -> None:
        f = _fields(msg)
        name = f"{prefix}.{_str(f, 1)}"
        types[name] = {}
        for n, wt, v, _ in f:
            if n == 2 and wt == 2:  # field
                ff = _fields(v)
                types[name][_str(ff, 1)] = _str(ff, 6)
            elif n == 3 and wt == 2:  # nested_type
                walk(v, name)

    for file in files:
        f = _fields(file)
        package = _str(f, 2)
        for n, wt, v, _ in f:
            if n == 4 and wt == 2:  # message_type
                walk(v, f".{package}" if package else "")
    return types


def _refused_by_native(rule: bytes, output_type: str, types: dict[str, dict[str, str]]) -> bool:
    f = _fields(rule)
    response_body = _str(f, 12)
    if response_body:
        msg = output_type
        for part in response_body.split("."):
            msg = types.get(msg, {}).get(part, "")
        if msg != _HTTP_BODY:
            return True
    return any(_refused_by_native(v, output_type, types) for n, wt, v, _ in f if n == 11 and wt == 2)


def native_compatible_descriptor(data: bytes) -> tuple[bytes, list[str]]:
    """Return (descriptor set without the HTTP rules native Envoy refuses, their methods)."""
    files = [v for n, wt, v, _ in _fields(data) if n == 1 and wt == 2]
    types = _message_field_types(files)
    stripped: list[str] = []

    def fix_method(method: bytes, service: str) -> bytes:
        f = _fields(method)
        out = bytearray()
        for n, wt, v, raw in f:
            if n == 4 and wt == 2:  # options
                opts = _fields(v)
                rules = [ov for on, owt, ov, _ in opts if on == _HTTP_RULE_EXT and owt == 2]
                if any(_refused_by_native(r, _str(f, 3), types) for r in rules):
                    stripped.append(f"{service}.{_str(f, 1)}")
                    kept = b"".join(oraw for on, _, _, oraw in opts if on != _HTTP_RULE_EXT)
                    raw = _ld(4, kept)
            out += raw
        return bytes(out)

    def fix_service(svc: bytes, package: str) -> bytes:
        f = _fields(svc)
        full = f"{package}.{_str(f, 1)}" if package else _str(f, 1)
        return b"".join(_ld(2, fix_method(v, full)) if n == 2 and wt == 2 else raw for n, wt, v, raw in f)

    def fix_file(file: bytes) -> bytes:
        f = _fields(file)
        package = _str(f, 2)
        return b"".join(_ld(6, fix_service(v, package)) if n == 6 and wt == 2 else raw for n, wt, v, raw in f)

    out = b"".join(_ld(1, fix_file(v)) if n == 1 and wt == 2 else raw for n, wt, v, raw in _fields(data))
    return (out if stripped else data), stripped


def transcoder_config(flavour: str, options: dict | None, descriptor: str | os.PathLike | None,
                      notes: list[str] | None = None) -> dict:
    """The GrpcJsonTranscoder fields as the given flavour gets them (descriptor included).

    wasm: proto_descriptor_bin = base64 of the descriptor file.
    native: proto_descriptor_bin = base64 of native_compatible_descriptor(file)."""
    if flavour not in TEMPLATES:
        raise ValueError(f"flavour must be one of {FLAVOURS}, not {flavour!r}")
    opts = dict(default_options() if options is None else options)
    # The Wasm build gets requests without a body through the router via envoy/companion.lua
    # unless told otherwise; the module appends their body itself, native has no such field.
    if flavour == "wasm":
        opts.setdefault("lua_companion", True)
    elif flavour == "native":
        opts.pop("lua_companion", None)
    # descriptor_url, descriptor_reflection (rust-grpc-proxy): the filter fetches the set itself.
    if not {"proto_descriptor", "proto_descriptor_bin", "descriptor_url", "descriptor_reflection"} & opts.keys():
        if descriptor is None:
            raise ValueError("a descriptor set is needed (descriptor=...)")
        data = Path(descriptor).read_bytes()
        if flavour == "native":
            data, stripped = native_compatible_descriptor(data)
            if notes is not None:
                notes.extend(
                    f"{m}: google.api.http rule removed (response_body on a non-HttpBody field, "
                    "which this filter refuses at load)" for m in stripped)
        opts["proto_descriptor_bin"] = base64.b64encode(data).decode("ascii")
    return opts


COMPANION_LUA = Path(__file__).resolve().parent / "companion.lua"
# "The Wasm filter's marker is on the request": the companion runs only then (companion-gate.json).
COMPANION_GATE = Path(__file__).resolve().parent / "companion-gate.json"
EXTENSION_WITH_MATCHER = "type.googleapis.com/envoy.extensions.common.matching.v3.ExtensionWithMatcher"
SKIP_FILTER = "type.googleapis.com/envoy.extensions.filters.common.matcher.action.v3.SkipFilter"


def companion_matcher() -> dict:
    """The companion's xds_matcher: skip it unless the Wasm filter's marker is there (a Lua
    filter costs every request a script run; only a transcoded request without a body needs it)."""
    gate = json.loads(COMPANION_GATE.read_text())
    return {"matcher_list": {"matchers": [{
        "predicate": {"not_matcher": gate},
        "on_match": {"action": {"name": "skip", "typed_config": {"@type": SKIP_FILTER}}},
    }]}}


def companion_filter(indent: str) -> str:
    """The Lua companion as one http_filters entry (YAML), its first line unindented: the Lua
    filter in an ExtensionWithMatcher that runs it only for requests with the marker."""
    code = "\n".join(indent + "            " + line if line else "" for line in COMPANION_LUA.read_text().splitlines())
    lines = [
        "- name: envoy.filters.http.lua",
        "  typed_config:",
        f'    "@type": {EXTENSION_WITH_MATCHER}',
        f"    xds_matcher: {json.dumps(companion_matcher())}",
        "    extension_config:",
        "      name: envoy.filters.http.lua",
        "      typed_config:",
        '        "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua',
        "        default_source_code:",
        "          inline_string: |",
    ]
    return ("\n" + indent).join(lines) + "\n" + code


def render(
    flavour: str,
    *,
    descriptor: str | os.PathLike | None,
    wasm: str | os.PathLike | None = None,
    options: dict | None = None,
    listen_address: str = "127.0.0.1",
    listen_port: int = 8080,
    admin_address: str = "127.0.0.1",
    admin_port: int = 9901,
    backend_host: str = "127.0.0.1",
    backend_port: int = 50051,
    route_timeout: str = "15s",
) -> str:
    """Return the Envoy config (YAML text) for `flavour` ("wasm", "dynmod" or "native").

    Ports may be 0 (Envoy then picks free ports; read them from the admin API)."""
    notes: list[str] = []
    config = transcoder_config(flavour, options, descriptor, notes)
    try:
        ipaddress.ip_address(backend_host)
        discovery = "STATIC"
    except ValueError:
        discovery = "STRICT_DNS"
    values = {
        "LISTEN_ADDRESS": listen_address,
        "LISTEN_PORT": str(int(listen_port)),
        "ADMIN_ADDRESS": admin_address,
        "ADMIN_PORT": str(int(admin_port)),
        "BACKEND_HOST": backend_host,
        "BACKEND_PORT": str(int(backend_port)),
        "BACKEND_DISCOVERY": discovery,
        "ROUTE_TIMEOUT": route_timeout,
    }
    if flavour in ("wasm", "dynmod"):
        # Both builds of the filter take the same JSON: readable options first, the (long) descriptor last.
        ordered = {k: v for k, v in config.items() if k != "proto_descriptor_bin"}
        if "proto_descriptor_bin" in config:
            ordered["proto_descriptor_bin"] = config["proto_descriptor_bin"]
        filter_config = _yaml_single_quoted(json.dumps(ordered, separators=(",", ":")))
    if flavour == "wasm":
        if wasm is None:
            raise ValueError("the wasm flavour needs wasm=<path of rust_grpc_proxy.wasm>")
        values["WASM_PATH"] = json.dumps(str(Path(wasm).resolve()))
        values["WASM_PLUGIN_CONFIG"] = filter_config
    if flavour == "dynmod":
        # The module itself is found by name (ENVOY_DYNAMIC_MODULES_SEARCH_PATH), not by path.
        values["FILTER_CONFIG"] = filter_config
    template = TEMPLATES[flavour].read_text()

    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name == "NATIVE_TRANSCODER_FIELDS":
            # One `field: <JSON value>` line per field (JSON is YAML flow syntax),
            # indented like the placeholder.
            line_start = template.rfind("\n", 0, match.start()) + 1
            indent = " " * (match.start() - line_start)
            lines = [f"# {note}" for note in notes]
            lines += [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in config.items()]
            return ("\n" + indent).join(lines)
        if name == "COMPANION_FILTER":
            line_start = template.rfind("\n", 0, match.start()) + 1
            return companion_filter(" " * (match.start() - line_start)) if config.get("lua_companion") else ""
        if name not in values:
            raise KeyError(f"{TEMPLATES[flavour].name}: no value for placeholder ${{{name}}}")
        return values[name]

    return _PLACEHOLDER.sub(substitute, template)


def _parse_options(arg: str | None) -> dict | None:
    if arg is None:
        return None
    text = arg if arg.lstrip().startswith("{") else Path(arg).read_text()
    value = json.loads(text)
    if not isinstance(value, dict):
        raise SystemExit("--options must be a JSON object")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--flavour", choices=FLAVOURS, required=True)
    p.add_argument("--descriptor", required=True, help="FileDescriptorSet (build/descriptors.pb)")
    p.add_argument("--wasm", help="rust_grpc_proxy.wasm (wasm flavour)")
    p.add_argument("--options", help="transcoder options: a JSON file or inline JSON object "
                                     "(default: envoy/transcoder-options.json)")
    p.add_argument("--listen-address", default="127.0.0.1")
    p.add_argument("--listen-port", type=int, default=8080)
    p.add_argument("--admin-address", default="127.0.0.1")
    p.add_argument("--admin-port", type=int, default=9901)
    p.add_argument("--backend", default="127.0.0.1:50051", help="HOST:PORT of the gRPC backend")
    p.add_argument("--route-timeout", default="15s")
    p.add_argument("--out", help="output file (default: stdout)")
    a = p.parse_args(argv)
    host, _, port = a.backend.rpartition(":")
    if not host or not port.isdigit():
        p.error("--backend must be HOST:PORT")
    text = render(
        a.flavour,
        descriptor=a.descriptor,
        wasm=a.wasm,
        options=_parse_options(a.options),
        listen_address=a.listen_address,
        listen_port=a.listen_port,
        admin_address=a.admin_address,
        admin_port=a.admin_port,
        backend_host=host.strip("[]"),
        backend_port=int(port),
        route_timeout=a.route_timeout,
    )
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(out)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
