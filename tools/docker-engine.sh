#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine; install and start Debian's
# docker.io when none does. Idempotent: a running engine is left alone.
set -euo pipefail
log() { printf 'docker-engine: %s\n' "$*"; }
die() { printf 'docker-engine: ERROR: %s\n' "$*" >&2; exit 1; }

wait_engine() {
  local deadline=$((SECONDS + ${1:-90}))
  until docker info >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

if docker info >/dev/null 2>&1; then
  log "engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null)), nothing to do"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || die "no Docker engine answers and installing one needs root: run 'sudo apt-get install docker.io' and start dockerd, or run this as root"
  command -v apt-get >/dev/null 2>&1 || die "no Docker engine answers and this is not a Debian-like system (no apt-get): install a Docker engine and start it, then run again"
  log "installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null \
    || die "apt-get install docker.io failed; see the apt output above"
fi

[ "$(id -u)" -eq 0 ] || die "dockerd is installed but not running, and starting it needs root"

# A stale pid file from an engine that died keeps a new one from starting.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
  rm -f /var/run/docker.pid
fi
if ! pgrep -x dockerd >/dev/null 2>&1; then
  log "starting dockerd (log: /var/log/mlops-dockerd.log)"
  setsid nohup dockerd >/var/log/mlops-dockerd.log 2>&1 </dev/null &
fi
wait_engine 90 || { tail -n 20 /var/log/mlops-dockerd.log >&2 || true; die "dockerd did not answer within 90 s (log above)"; }
log "engine up: $(docker version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}')"
