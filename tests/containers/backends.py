"""The gateway's test backends as an image: tests/gateway's greeter (grpcio with
reflection) and WebSocket echo server, with this machine's Python 3.11 and the venv's
grpcio, protobuf and websockets. No registry can be reached here, so the image is put
together from files (`podman import`), like deploy/podman/local-bases.sh does; it is a
test fixture, not something the project ships, so it takes every library ldd names.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pods
from pods import OUT_DIR, REPO, podman

GATEWAY_TESTS = REPO / "tests" / "gateway"
SCRIPTS = [GATEWAY_TESTS / "greeter_server.py", GATEWAY_TESTS / "ws_echo_server.py",
           REPO / "envoy" / "gateway" / "greeter.pb"]
PACKAGES = ["grpc", "grpc_reflection", "google", "websockets", "typing_extensions.py"]
STDLIB_SKIP = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "unittest", "pydoc_data",
               "config-3.11-x86_64-linux-gnu", "distutils", "venv"}


def _libraries(paths: list[Path]) -> set[str]:
    """The shared libraries (and loader) ldd names for these ELF files."""
    out = subprocess.run(["ldd", *map(str, paths)], capture_output=True, text=True).stdout
    libs = set()
    for line in out.splitlines():
        line = line.strip()
        if line.endswith(":"):  # ldd's header naming the file it lists
            continue
        if "=>" in line:
            target = line.split("=>")[1].split("(")[0].strip()
            if target.startswith("/"):
                libs.add(target)
        elif line.startswith("/"):
            libs.add(line.split()[0])
    return libs


def python_image() -> str:
    """Build (once per content) and name the backends image."""
    python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = Path(sysconfig.get_paths()["purelib"])
    digest = hashlib.sha256()
    for f in [Path(__file__), python, REPO / "requirements.txt", *SCRIPTS]:
        digest.update(f.read_bytes())
    name = f"localhost/rgp-local/python-backends:{digest.hexdigest()[:12]}"
    if podman("image", "exists", name, check=False).returncode == 0:
        return name

    root = OUT_DIR / "python-backends-root"
    if root.exists():
        shutil.rmtree(root)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    # Symlinks followed: Debian's stdlib links sitecustomize.py into /etc, absent from the image.
    shutil.copytree(stdlib, root / str(stdlib).lstrip("/"), symlinks=False, ignore_dangling_symlinks=True,
                    ignore=lambda d, names: [n for n in names if Path(d) == stdlib and n in STDLIB_SKIP])
    dist = root / "srv" / "site"
    dist.mkdir(parents=True)
    for p in PACKAGES:
        src = site / p
        if src.is_dir():
            shutil.copytree(src, dist / p, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dist / p)
    # At its own path, so that it finds its standard library where it was built to.
    (root / str(python.parent).lstrip("/")).mkdir(parents=True, exist_ok=True)
    shutil.copy2(python, root / str(python).lstrip("/"))
    (root / "usr" / "bin").mkdir(parents=True, exist_ok=True)
    if not (root / "usr" / "bin" / "python3").exists():
        (root / "usr" / "bin" / "python3").symlink_to(python)
    elves = [python, *[p for p in root.rglob("*.so*") if p.is_file()]]
    for lib in _libraries(elves):
        real = Path(lib).resolve()
        dest = root / str(Path(lib).parent.resolve()).lstrip("/") / Path(lib).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(real, dest)
    for d in ("bin", "lib", "lib64"):
        if not (root / d).exists():
            (root / d).symlink_to(f"usr/{d}")
    srv = root / "srv"
    for f in SCRIPTS:
        shutil.copy2(f, srv / f.name)
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/sbin/nologin\nnonroot:x:65532:65532::/:/sbin/nologin\n")
    (root / "tmp").mkdir(mode=0o1777)
    tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "--owner=0", "--group=0", "-c", "."],
                           stdout=subprocess.PIPE)
    subprocess.run(["podman", "import", "--quiet", "--change", "ENV PYTHONDONTWRITEBYTECODE=1",
                    "--change", "ENV PYTHONUNBUFFERED=1",
                    "--change", "ENV PYTHONPATH=/srv/site", "-", name], stdin=tar.stdout, check=True,
                   capture_output=True, timeout=300)
    tar.wait()
    shutil.rmtree(root)
    return name


if __name__ == "__main__":
    pods.OUT_DIR.mkdir(parents=True, exist_ok=True)
    print(python_image())
