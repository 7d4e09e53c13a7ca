#!/usr/bin/env bash
# Can podman run a container here? Runs /bin/sh in a tiny image made from this machine's
# dash and glibc (no registry needed) and, when that fails, says why in terms of the usual
# causes, so that `make image` / `make test-containers` fail with a reason instead of
# failing later, or passing without having run anything.
#   deploy/podman/check.sh WORK_DIR
set -euo pipefail

WORK="${1:?usage: $0 WORK_DIR}"
IMAGE=localhost/rgp-local/check:1

fail() {
  echo "error: podman cannot run containers on this machine: $1" >&2
  echo "  (CONTAINERS_CONF=${CONTAINERS_CONF:-unset}; see deploy/podman/containers.conf and docs/containers.md)" >&2
  exit 1
}

command -v podman >/dev/null || fail "podman is not installed (apt-get install podman runc)"
command -v runc >/dev/null || fail "runc is not installed (apt-get install runc); containers.conf selects the runc runtime"
[ -n "${CONTAINERS_CONF:-}" ] && [ ! -r "$CONTAINERS_CONF" ] && fail "CONTAINERS_CONF names $CONTAINERS_CONF, which cannot be read"

if ! info=$(podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Host.CgroupsVersion}}' 2>&1); then
  fail "'podman info' failed: $info"
fi

if ! podman image exists "$IMAGE"; then
  root="$WORK/check-root"
  rm -rf "$root"
  mkdir -p "$root"/usr/bin "$root"/usr/lib/x86_64-linux-gnu "$root"/usr/lib64
  ln -s usr/bin "$root"/bin
  ln -s usr/lib "$root"/lib
  ln -s usr/lib64 "$root"/lib64
  cp /usr/bin/dash "$root"/usr/bin/sh
  cp -L /lib/x86_64-linux-gnu/libc.so.6 "$root"/usr/lib/x86_64-linux-gnu/
  cp -L /lib64/ld-linux-x86-64.so.2 "$root"/usr/lib64/
  tar -C "$root" --numeric-owner --owner=0 --group=0 -c . | podman import --quiet - "$IMAGE" >/dev/null \
    || fail "'podman import' of a local tarball failed"
  rm -rf "$root"
fi

name="rgp-check-$$"
if ! out=$(podman run --rm --name "$name" --network none --read-only --user 65532:65532 "$IMAGE" \
             /usr/bin/sh -c 'echo ok' 2>&1) || [ "$out" != ok ]; then
  podman rm -f "$name" >/dev/null 2>&1 || true
  hint=""
  case "$out" in
    *RLIMIT_NOFILE*|*setrlimit*|*rlimit*) hint=" (the ulimits podman sets exceed this sandbox's: containers.conf default_ulimits)" ;;
    *"hybrid mode"*|*cgroup*) hint=" (cgroups: containers.conf must select runtime runc and cgroup_manager cgroupfs)" ;;
    *"user namespace"*|*newuidmap*|*subuid*) hint=" (rootless podman needs user namespaces and /etc/subuid entries; run as root)" ;;
  esac
  fail "a test container did not run$hint: $out"
fi
echo "podman $(podman version --format '{{.Client.Version}}') runs containers here ($info)"
