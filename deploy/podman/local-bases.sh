#!/usr/bin/env bash
# Local stand-ins for the base images of deploy/Dockerfile, for a machine that reaches no
# registry (this project's build machines): each is made with `podman import` from files
# this machine has, and named so that nobody mistakes it for the real image.
#
#   deploy/podman/local-bases.sh OUT_DIR ENVOY WASM DYNMOD RGP_INJECTOR EXAMPLE_SERVICE
#
# prints the three --build-arg values for deploy/Dockerfile:
#   ENVOY_IMAGE    localhost/rgp-local/envoy:distroless-v1.40.0-<digest>
#                  like envoyproxy/envoy:distroless (distroless base-nossl, Debian 12):
#                  Envoy at /usr/local/bin/envoy, glibc, /etc/passwd with nonroot 65532,
#                  /tmp; no shell, no libgcc_s, no libssl (Envoy is BoringSSL, static).
#   RUNTIME_IMAGE  localhost/rgp-local/debian:bookworm-slim-<digest>
#                  the parts of debian:bookworm-slim a Rust binary can use: glibc,
#                  libgcc_s, /bin/sh.
#   RUST_IMAGE     localhost/rgp-local/rust-outputs:<digest of the outputs>
#                  not a toolchain: /bin/sh, glibc and libgcc_s (as in rust:1-bookworm)
#                  and the outputs the build stage would compile, in /out (the
#                  Dockerfile then uses them as they are).
# Only the libraries of the Debian packages the real images ship (libc6, libgcc-s1) are
# copied, never "whatever ldd finds": a binary that needs more must fail here as it would
# on the real base.
# Needs podman (CONTAINERS_CONF as the Makefile sets it), dpkg, sha256sum; Debian 12 host.
set -euo pipefail

if [ $# -ne 6 ]; then
  echo "usage: $0 OUT_DIR ENVOY WASM DYNMOD RGP_INJECTOR EXAMPLE_SERVICE" >&2
  exit 2
fi
OUT="$1" ENVOY="$2" WASM="$3" DYNMOD="$4" INJECTOR="$5" EXAMPLE="$6"
for f in "$ENVOY" "$WASM" "$DYNMOD" "$INJECTOR" "$EXAMPLE"; do
  [ -s "$f" ] || { echo "error: $f is missing (make image builds it)" >&2; exit 1; }
done

# Tags carry a digest of what made them (this script; the files copied), so that a changed
# script or output gets a new stand-in instead of a stale one from podman's store.
script_sum=$(sha256sum "$0" | cut -c1-8)
envoy_sum=$(cat "$0" "$ENVOY" | sha256sum | cut -c1-12)
outputs_sum=$(cat "$0" "$WASM" "$DYNMOD" "$INJECTOR" "$EXAMPLE" | sha256sum | cut -c1-12)
ENVOY_IMAGE=localhost/rgp-local/envoy:distroless-v1.40.0-$envoy_sum
RUNTIME_IMAGE=localhost/rgp-local/debian:bookworm-slim-$script_sum
RUST_IMAGE=localhost/rgp-local/rust-outputs:$outputs_sum

# Shared libraries (and the loader) of Debian packages, with their real paths.
package_libs() {
  dpkg -L "$@" | grep -E '^/(usr/)?lib(64)?/x86_64-linux-gnu/[^/]+\.so[.0-9]*$|/ld-linux-x86-64\.so\.2$' | sort -u
}

# A root with Debian 12's merged /usr (/bin, /lib, /lib64 are symlinks into /usr).
new_root() {
  local root="$1"
  rm -rf "$root"
  mkdir -p "$root"/usr/bin "$root"/usr/lib/x86_64-linux-gnu "$root"/usr/lib64 "$root"/etc "$root"/tmp
  chmod 1777 "$root"/tmp
  ln -s usr/bin "$root"/bin
  ln -s usr/lib "$root"/lib
  ln -s usr/lib64 "$root"/lib64
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
    > "$root"/etc/passwd
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' > "$root"/etc/group
}

copy_libs() {
  local root="$1"; shift
  local f real
  for f in $(package_libs "$@"); do
    real="$(readlink -f "$(dirname "$f")")/$(basename "$f")"
    mkdir -p "$root$(dirname "$real")"
    cp -L "$f" "$root$real"
  done
  # The loader's path in every x86-64 ELF binary.
  [ -e "$root"/usr/lib64/ld-linux-x86-64.so.2 ] \
    || ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root"/usr/lib64/ld-linux-x86-64.so.2
}

import() {
  local root="$1" name="$2"
  tar -C "$root" --numeric-owner --owner=0 --group=0 -c . \
    | podman import --quiet - "$name" >/dev/null
  echo "built $name" >&2
}

mkdir -p "$OUT"

if ! podman image exists "$ENVOY_IMAGE"; then
  r="$OUT/envoy-root"
  new_root "$r"
  copy_libs "$r" libc6
  mkdir -p "$r"/usr/local/bin "$r"/home/nonroot
  cp "$ENVOY" "$r"/usr/local/bin/envoy
  chmod 755 "$r"/usr/local/bin/envoy
  import "$r" "$ENVOY_IMAGE"
  rm -rf "$r"
fi

if ! podman image exists "$RUNTIME_IMAGE"; then
  r="$OUT/runtime-root"
  new_root "$r"
  copy_libs "$r" libc6 libgcc-s1
  cp /usr/bin/dash "$r"/usr/bin/sh
  import "$r" "$RUNTIME_IMAGE"
  rm -rf "$r"
fi

if ! podman image exists "$RUST_IMAGE"; then
  r="$OUT/rust-outputs-root"
  new_root "$r"
  copy_libs "$r" libc6 libgcc-s1
  cp /usr/bin/dash "$r"/usr/bin/sh
  mkdir -p "$r"/out
  cp "$WASM" "$r"/out/rust_grpc_proxy.wasm
  cp "$DYNMOD" "$r"/out/librust_grpc_proxy.so
  cp "$INJECTOR" "$r"/out/rgp-injector
  cp "$EXAMPLE" "$r"/out/example-service
  chmod 755 "$r"/out/rgp-injector "$r"/out/example-service
  import "$r" "$RUST_IMAGE"
  rm -rf "$r"
fi

echo "RUST_IMAGE=$RUST_IMAGE ENVOY_IMAGE=$ENVOY_IMAGE RUNTIME_IMAGE=$RUNTIME_IMAGE"
