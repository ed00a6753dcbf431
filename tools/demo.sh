#!/usr/bin/env bash
# `make demo`: the sandbox up (3 instances, env `local`), then demo/demo.yml — AWS
# resources, the Titanic model API built and pushed to the sandbox's ECR, and the
# release of `local` exactly as CI runs playbooks/site.yml for a real environment.
# `make demo-down` (tools/demo.sh down) removes the sandbox, the demo's images and
# its build directory.
set -euo pipefail
# shellcheck source=tools/env.sh
. "$(dirname "$0")/env.sh"
export MLOPS_RELEASE_WORKDIR=$ROOT/.build/release

if [ "${1:-}" = down ]; then
  # This sandbox's images only (its registry address; other sandboxes share the engine).
  registry=$(python -c 'from mlops_sandbox.config import Config; print(Config().registry_address)')
  mlops-sandbox down
  docker image ls --format '{{.Repository}}:{{.Tag}}' | { grep -E "^${registry//./\\.}/titanic-(api|train):" || true; } | xargs -r docker image rm -f >/dev/null
  rm -rf "$MLOPS_RELEASE_WORKDIR" "$ROOT/.build/demo-train"
  echo "demo: removed (sandbox, demo images, release build directory)"
  exit 0
fi

if [ "${1:-}" = train ]; then
  # `make demo-train`: no fleet needed; the training task runs as a container of the sandbox's ECS.
  shift
  start=$SECONDS
  MLOPS_SANDBOX_INSTANCES=${MLOPS_SANDBOX_INSTANCES:-0} mlops-sandbox up
  # shellcheck disable=SC1091
  . .sandbox/env
  ansible-playbook -i inventories/local demo/train.yml -e demo_workdir="$ROOT/.build/demo-train" "$@"
  echo "demo-train: done in $((SECONDS - start))s (make demo-down removes it all)"
  exit 0
fi

start=$SECONDS
mlops-sandbox up
# shellcheck disable=SC1091
. .sandbox/env
ansible-playbook -i inventories/local demo/demo.yml -e release_workdir="$MLOPS_RELEASE_WORKDIR" "$@"
echo "demo: done in $((SECONDS - start))s; the endpoint URLs above answer POST /predict (make demo-down removes it all)"
