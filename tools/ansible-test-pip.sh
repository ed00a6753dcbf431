#!/usr/bin/env bash
# ansible-test bootstraps pip in each sanity virtualenv with a get-pip script that it
# downloads from a host this machine cannot reach; it looks for a cached copy first
# (~/.ansible/test/cache/get_pip_<version>.py). We put there a small script of our own
# that runs pip from the pip wheel of that version (from PyPI) with the arguments it is
# given, minus get-pip's own --no-setuptools/--no-wheel. Idempotent.
set -euo pipefail
VENV=${VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv}
cache=$HOME/.ansible/test/cache
req=$("$VENV/bin/python" -c 'import ansible_test, os; print(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py"))')
version=$(sed -nE "s/^\s*pip='([0-9.]+)',?\s*$/\1/p" "$req" | head -n1)
[ -n "$version" ] || { echo "ansible-test-pip: ERROR: cannot find the pip version ansible-test wants in $req" >&2; exit 1; }
script=$cache/get_pip_${version//./_}.py
wheel=$cache/pip-$version-py3-none-any.whl
if [ -f "$script" ] && [ -f "$wheel" ]; then
  echo "ansible-test-pip: bootstrap for pip $version present, skipped"
  exit 0
fi
mkdir -p "$cache"
"$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary :all: -d "$cache" "pip==$version" 2>&1 \
  | grep -vE "^WARNING: Location '.*' is ignored" || true
[ -f "$wheel" ] || { echo "ansible-test-pip: ERROR: could not download the pip $version wheel" >&2; exit 1; }
cat >"$script" <<PYEOF
"""Stand-in for get-pip.py, written by mlops.deploy's tools/ansible-test-pip.sh.

Installs pip $version (and the packages named) from the pip wheel beside this file.
"""
import os
import runpy
import sys

WHEEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pip-$version-py3-none-any.whl")
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.path.insert(0, WHEEL)
sys.argv = ["pip", "install", "--disable-pip-version-check", *args]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
PYEOF
echo "ansible-test-pip: bootstrap for pip $version written to $script"
