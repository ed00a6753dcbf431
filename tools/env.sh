# Sourced by the tools that run playbooks and tests from this checkout: the project's
# virtualenv first on PATH, this collection (linked by tools/setup.sh) and the test
# ansible.cfg, and the classic docker builder (BuildKit is not available here).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH=$ROOT/.venv/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$ROOT/.build/collections
export ANSIBLE_CONFIG=$ROOT/tests/ansible.cfg
export DOCKER_BUILDKIT=0
