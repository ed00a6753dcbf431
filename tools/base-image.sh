#!/usr/bin/env bash
# Build the Debian base image every local container starts from (sandbox instances,
# molecule platforms): debootstrap + docker import, since no registry can be pulled
# from here. Reused when present; MLOPS_REBUILD_BASE=1 forces a rebuild.
set -euo pipefail
IMAGE=${MLOPS_BASE_IMAGE:-mlops-deploy/debian:bookworm}
SUITE=bookworm
# python3 so Ansible can manage the container; the rest is what every later layer needs.
INCLUDE=python3,python3-apt,ca-certificates,procps,iproute2,curl
log() { printf 'base-image: %s\n' "$*"; }
die() { printf 'base-image: ERROR: %s\n' "$*" >&2; exit 1; }

if [ "${MLOPS_REBUILD_BASE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE present, reused"
  exit 0
fi

# The Debian mirror this machine already uses (never a hard-coded host).
mirror() {
  local m
  m=$(grep -hE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  [ -n "$m" ] || m=$(grep -hE '^\s*deb\s' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  printf '%s' "$m"
}
MIRROR=$(mirror)
[ -n "$MIRROR" ] || die "no Debian mirror found in /etc/apt/sources.list(.d); configure apt first"

command -v debootstrap >/dev/null 2>&1 || {
  [ "$(id -u)" -eq 0 ] || die "debootstrap is missing and installing it needs root (apt-get install debootstrap)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}

work=$(mktemp -d /var/tmp/mlops-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
log "debootstrap $SUITE from the machine's mirror into $work"
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
# Keep the image small and apt usable inside it.
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
tar -C "$work/rootfs" -c . | docker import \
  --change 'CMD ["/bin/bash"]' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'LABEL org.opencontainers.image.title=mlops-deploy-base' - "$IMAGE" >/dev/null
log "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
